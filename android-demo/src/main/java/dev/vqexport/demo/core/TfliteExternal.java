package dev.vqexport.demo.core;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The loader of decode="load" .tflite files (vqexport/formats/tflite/external.py is the
 * reference). Such a file keeps each compressed weight as a constant whose Buffer points past the
 * end of the file; the compressed tensors travel in the file as a .vqm (metadata entry
 * "vqexport.vqm"). expand() copies the file into a memory-mapped temporary file that also holds
 * those slots and decodes every weight into its slot, block by block, so the interpreter sees
 * constant weights and XNNPACK packs them as it would a dense model's.
 */
public final class TfliteExternal {
    public static final String EMBED_NAME = "vqexport.vqm";
    static final int AREA_ALIGN = 64;
    /** Floats decoded at a time: the loader's only heap scratch (with as many doubles for svd). */
    static final int BLOCK = 1 << 16;
    private static final Charset UTF8 = Charset.forName("UTF-8");

    private TfliteExternal() {
    }

    /** One slot: where a decoded weight goes, and in which orientation. */
    private static final class Slot {
        long offset;
        long size;
        String layer;
        String layout;
        /** The weight's dimensions in the slot's order (external.py slot_axes). */
        int[] axes;
        VqmTensor tensor;

        boolean identity() {
            for (int i = 0; i < axes.length; i++) {
                if (axes[i] != i) {
                    return false;
                }
            }
            return true;
        }
    }

    /**
     * The model with every slot filled, in a direct buffer of native order (what the Interpreter
     * takes), or null when the file is not decode="load" (run it as it is). Every index, offset and
     * size the file gives is checked before anything is allocated. The buffer maps a temporary file
     * in {@code cacheDir} (deleted at once; the mapping lives until the buffer is collected), so the
     * decoded weights never sit on the Java heap: ART counts direct buffers against it, and a
     * VGG-16-class model would not fit. Scratch is one block of {@link #BLOCK} floats.
     */
    public static ByteBuffer expand(ByteBuffer file, String name, VqmLimits limits, File cacheDir) throws IOException {
        List<Slot> slots = slots(file, name, limits);
        if (slots == null) {
            return null;
        }
        long total = file.capacity();
        for (Slot s : slots) {
            total = Math.max(total, s.offset + s.size);
        }
        MappedByteBuffer out = mapTemp(cacheDir, total, name);
        ByteBuffer src = file.duplicate();
        src.clear();
        out.put(src);
        float[] block = new float[BLOCK];
        double[] acc = new double[BLOCK];
        for (Slot s : slots) {
            long numel = s.tensor.numel();
            boolean identity = s.identity();
            boolean transposed = !identity && s.axes.length == 2; // W^T: runs down W's columns
            for (long at = 0; at < numel; at += BLOCK) {
                int len = (int) Math.min(BLOCK, numel - at);
                if (identity || transposed) {
                    s.tensor.decodeRange(transposed, at, block, 0, len, acc);
                } else { // e.g. a conv's OIHW filter stored OHWI: element by element
                    s.tensor.decodePermuted(s.axes, at, block, 0, len, acc);
                }
                ByteBuffer dst = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
                dst.position((int) (s.offset + 4 * at));
                dst.asFloatBuffer().put(block, 0, len);
            }
        }
        out.clear();
        return out.order(ByteOrder.nativeOrder());
    }

    /** A read-write map of a new {@code size}-byte (zero) file in {@code dir}, the file already unlinked. */
    private static MappedByteBuffer mapTemp(File dir, long size, String name) throws IOException {
        if (dir == null || !dir.isDirectory()) {
            throw fail(name, ": the cache folder " + dir + " for the decoded weights does not exist");
        }
        File tmp = File.createTempFile("vqx-load-", ".bin", dir);
        try {
            RandomAccessFile raf = new RandomAccessFile(tmp, "rw");
            try {
                raf.setLength(size);
                return raf.getChannel().map(FileChannel.MapMode.READ_WRITE, 0, size);
            } finally {
                raf.close(); // the mapping stays valid
            }
        } finally {
            if (!tmp.delete()) {
                tmp.deleteOnExit();
            }
        }
    }

    /** The default caps, decoding into the platform's temporary folder (an app's cache folder on Android). */
    public static ByteBuffer expand(ByteBuffer file, String name) throws IOException {
        return expand(file, name, VqmLimits.DEFAULT);
    }

    /** Caller-chosen caps, decoding into the platform's temporary folder. */
    public static ByteBuffer expand(ByteBuffer file, String name, VqmLimits limits) throws IOException {
        return expand(file, name, limits, new File(System.getProperty("java.io.tmpdir")));
    }

    /** The checked slots of a decode="load" file, or null when the file is not one. */
    private static List<Slot> slots(ByteBuffer file, String name, VqmLimits limits) throws IOException {
        ByteBuffer metaBuf = TfliteMetadata.entry(file, "vqexport", name);
        if (metaBuf == null) {
            return null;
        }
        byte[] meta = new byte[metaBuf.remaining()];
        if (meta.length > limits.maxMetadataBytes) {
            throw fail(name, ": the vqexport metadata is " + meta.length + " bytes, over the cap of "
                    + limits.maxMetadataBytes);
        }
        metaBuf.get(meta);
        Object parsed;
        try {
            parsed = Json.parseWithLongs(new String(meta, UTF8), limits.maxJsonDepth);
        } catch (IllegalArgumentException e) {
            throw fail(name, ": the vqexport metadata is not valid JSON (" + e.getMessage() + ")");
        }
        if (!(parsed instanceof Map)) {
            throw fail(name, ": the vqexport metadata is " + VqmMetadata.describe(parsed) + ", not a JSON object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> info = (Map<String, Object>) parsed;
        if (!"load".equals(info.get("decode"))) {
            return null;
        }
        return plan(file, name, info, limits);
    }

    private static List<Slot> plan(ByteBuffer file, String name, Map<String, Object> info, VqmLimits limits)
            throws IOException {
        ByteBuffer embedded = TfliteMetadata.entry(file, EMBED_NAME, name);
        if (embedded == null) {
            throw fail(name, ": decode='load' but the file has no " + EMBED_NAME + " metadata entry");
        }
        VqmFile vqm = VqmReader.parse(embedded, name + " (" + EMBED_NAME + ")", limits);
        Object listed = info.get("slots");
        if (!(listed instanceof List) || ((List<?>) listed).isEmpty()) {
            throw fail(name, ": decode='load' but the metadata lists no slots");
        }
        long start = align(file.capacity());
        List<Slot> slots = new ArrayList<Slot>();
        Set<String> pairs = new HashSet<String>();
        long budget = 0;
        for (Object o : (List<?>) listed) {
            Slot s = slot(file, name, vqm, o);
            if (!pairs.add(s.layer + "\u0000" + s.layout)) {
                throw fail(name, ": two slots for the same layer and layout (" + s.layer + ")");
            }
            try { // the .vqm's caps bound each numel; a caller may have raised them past 2^62
                budget = Math.addExact(budget, align(Math.multiplyExact(4L, s.tensor.numel())));
            } catch (ArithmeticException e) {
                throw fail(name, ": the decode area overflows 64 bits");
            }
            slots.add(s);
        }
        if (budget > limits.allowedFor(file.capacity())) {
            throw fail(name, ": the decode area " + limits.overMessage(budget, file.capacity()));
        }
        if (start + budget > Integer.MAX_VALUE) {
            throw fail(name, ": the file and its decode area take " + (start + budget)
                    + " bytes, more than the 2 GiB one buffer holds");
        }
        // Each (layer, layout) has one slot, so the area is at most twice the decoded .vqm: a file
        // cannot make the loader allocate more than the weights it describes, whatever its offsets say.
        for (Slot s : slots) {
            if (s.offset < start || s.offset % AREA_ALIGN != 0 || s.size > start + budget - s.offset) {
                throw fail(name, ": layer " + s.layer + ": offset " + s.offset
                        + " lies outside the decode area [" + start + ", " + (start + budget) + ")");
            }
        }
        List<Slot> sorted = new ArrayList<Slot>(slots);
        Collections.sort(sorted, new Comparator<Slot>() {
            @Override
            public int compare(Slot a, Slot b) {
                return Long.compare(a.offset, b.offset);
            }
        });
        for (int i = 1; i < sorted.size(); i++) {
            Slot a = sorted.get(i - 1);
            Slot b = sorted.get(i);
            if (b.offset < a.offset + a.size) {
                throw fail(name, ": the slots of " + a.layer + " and " + b.layer + " overlap");
            }
        }
        return slots;
    }

    private static Slot slot(ByteBuffer file, String name, VqmFile vqm, Object o) throws IOException {
        if (!(o instanceof Map)) {
            throw fail(name, ": malformed slot: " + VqmMetadata.describe(o) + ", not an object");
        }
        Map<?, ?> m = (Map<?, ?>) o;
        Object buffer = m.get("buffer");
        Object layer = m.get("layer");
        Object layout = m.get("layout");
        Object shape = m.get("shape");
        boolean shapeOk = shape instanceof List && ((List<?>) shape).size() <= 8;
        if (shapeOk) {
            for (Object v : (List<?>) shape) {
                shapeOk &= VqmMetadata.isInteger(v);
            }
        }
        if (!VqmMetadata.isInteger(buffer) || ((Number) buffer).doubleValue() < 0
                || ((Number) buffer).doubleValue() > Integer.MAX_VALUE || !(layer instanceof String)
                || !(layout instanceof String) || !shapeOk) {
            throw fail(name, ": malformed slot: it needs an integer buffer, a layer name, a layout (W, WT, axes:...)"
                    + " and a shape of integers");
        }
        Slot s = new Slot();
        s.layer = (String) layer;
        s.layout = (String) layout;
        try {
            s.tensor = vqm.get(s.layer);
        } catch (IllegalArgumentException e) {
            throw fail(name, ": slot names layer " + s.layer + ", which the embedded .vqm lacks");
        }
        if (s.tensor.method == 0) {
            throw fail(name, ": layer " + s.layer + " is stored raw in the embedded .vqm; a slot takes a compressed weight");
        }
        int[] ws = s.tensor.shape;
        s.axes = slotAxes(s.layout, ws.length);
        List<?> got = (List<?>) shape;
        boolean fits = s.axes != null && got.size() == ws.length;
        for (int i = 0; fits && i < ws.length; i++) {
            fits = ((Number) got.get(i)).longValue() == ws[s.axes[i]];
        }
        if (!fits) {
            throw fail(name, ": layer " + s.layer + ": slot " + clip(s.layout, 40) + " " + clip(got.toString(), 100)
                    + " does not fit its weight " + java.util.Arrays.toString(ws));
        }
        long[] b = TfliteMetadata.bufferInfo(file, ((Number) buffer).intValue(), name);
        s.offset = b[1];
        s.size = b[2];
        if (b[0] != 0 || s.size != 4 * s.tensor.numel()) {
            throw fail(name, ": layer " + s.layer + ": buffer " + buffer + " holds " + s.size
                    + " bytes, expected " + 4 * s.tensor.numel());
        }
        return s;
    }

    /**
     * The axes a slot's layout permutes the weight by, as external.py slot_axes: W keeps them, WT
     * swaps a 2-D weight's two, "axes:i,j,..." names them (a conv's OIHW filter stored OHWI is
     * axes:0,2,3,1); null when malformed or not a permutation of 0..ndim-1.
     */
    static int[] slotAxes(String layout, int ndim) {
        if ("W".equals(layout)) {
            int[] id = new int[ndim];
            for (int i = 0; i < ndim; i++) {
                id[i] = i;
            }
            return id;
        }
        if ("WT".equals(layout)) {
            return ndim == 2 ? new int[] {1, 0} : null;
        }
        if (!layout.startsWith("axes:") || layout.codePointCount(0, layout.length()) > 64) {
            return null;
        }
        String[] parts = layout.substring(5).split(",", -1); // -1: keep empty pieces, as str.split does
        if (parts.length != ndim) {
            return null;
        }
        int[] axes = new int[ndim];
        boolean[] seen = new boolean[ndim];
        for (int i = 0; i < ndim; i++) {
            long a = pyInt(parts[i]);
            if (a < 0 || a >= ndim || seen[(int) a]) {
                return null;
            }
            seen[(int) a] = true;
            axes[i] = (int) a;
        }
        return axes;
    }

    /**
     * What Python's int(s) gives for a small non-negative value: surrounding whitespace, one sign,
     * decimal digits with single underscores between them; -1 when it fails or is negative or large
     * (no such value is an axis, so Python's slot_axes refuses it too).
     */
    static long pyInt(String s) {
        int a = 0;
        int b = s.length();
        while (a < b && isPySpace(s.charAt(a))) {
            a++;
        }
        while (b > a && isPySpace(s.charAt(b - 1))) {
            b--;
        }
        boolean negative = false;
        if (a < b && (s.charAt(a) == '+' || s.charAt(a) == '-')) {
            negative = s.charAt(a) == '-';
            a++;
        }
        if (a == b) {
            return -1;
        }
        long v = 0;
        boolean digitBefore = false;
        for (int i = a; i < b; i++) {
            char c = s.charAt(i);
            if (c == '_') {
                if (!digitBefore || i + 1 >= b || s.charAt(i + 1) == '_') {
                    return -1;
                }
                digitBefore = false;
                continue;
            }
            int digit = Character.digit(c, 10);
            if (digit < 0 || Character.getType(c) != Character.DECIMAL_DIGIT_NUMBER) {
                return -1;
            }
            v = Math.min(v * 10 + digit, 1L << 40); // saturates: anything this large is no axis
            digitBefore = true;
        }
        return negative && v != 0 ? -1 : v;
    }

    private static boolean isPySpace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    private static String clip(String s, int n) {
        return s.length() <= n ? s : s.substring(0, n);
    }

    /** A one-line error naming the file (layer names come from the file and may hold line breaks). */
    private static IOException fail(String name, String message) {
        return new IOException(VqmException.oneLine(name + message));
    }

    private static long align(long n) {
        return (n + AREA_ALIGN - 1) / AREA_ALIGN * AREA_ALIGN;
    }
}
