package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;

/**
 * Finds a named metadata buffer in a .tflite file by walking its FlatBuffer (schema.fbs: Model
 * field 4 = buffers, field 6 = metadata; Metadata = {name, buffer}; Buffer = {data, offset, size}).
 * Only what that needs is read. Java's FlatBuffers runtime has no verifier, so this reader is its
 * own: every offset, vtable and length is checked against the file before it is followed or used
 * to size anything, and a damaged file is a {@link TfliteFormatException}, never a runtime error.
 * Nothing is allocated from a length the file gives: results are slices of the model's buffer.
 */
public final class TfliteMetadata {
    private static final Charset UTF8 = Charset.forName("UTF-8");
    private static final int MODEL_BUFFERS = 4;
    private static final int MODEL_METADATA = 6;

    private final ByteBuffer b;
    private final int cap;
    private final String file;

    private TfliteMetadata(ByteBuffer model, String file) {
        b = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.clear();
        cap = b.capacity();
        this.file = file;
    }

    /** The bytes of metadata entry {@code name}, or null when the model has none of that name. */
    public static byte[] find(byte[] model, String name) {
        return find(ByteBuffer.wrap(model), name);
    }

    /**
     * The same on a (memory-mapped) buffer holding the whole model from index 0; it is not moved.
     * A damaged file is an IllegalArgumentException here (callers that want a checked error use
     * {@link #entry}).
     */
    public static byte[] find(ByteBuffer model, String name) {
        try {
            ByteBuffer s = entry(model, name, "model");
            if (s == null) {
                return null;
            }
            byte[] out = new byte[s.remaining()];
            s.get(out);
            return out;
        } catch (TfliteFormatException e) {
            throw new IllegalArgumentException(e.reason(), e);
        }
    }

    /**
     * Metadata entry {@code name} as a read-only slice of {@code model} (no copy), or null when
     * absent. {@code file} names the file in errors.
     */
    public static ByteBuffer entry(ByteBuffer model, String name, String file) throws TfliteFormatException {
        return new TfliteMetadata(model, file).find(name);
    }

    /**
     * Buffer {@code index} of the model as {data length, offset, size}: a Buffer holds its bytes
     * inline (data) or names them by offset and size from the start of the model. Offset and size
     * are returned as stored (a decode="load" slot points past the end of the file on purpose).
     */
    public static long[] bufferInfo(ByteBuffer model, int index, String file) throws TfliteFormatException {
        TfliteMetadata t = new TfliteMetadata(model, file);
        int buf = t.bufferTable(t.root(), index);
        int dataField = t.field(buf, 0, 4);
        long dataLen = dataField == 0 ? 0 : t.vectorLength(t.deref(dataField), 1);
        int offField = t.field(buf, 1, 8);
        int sizeField = t.field(buf, 2, 8);
        return new long[] {dataLen, offField == 0 ? 0 : t.b.getLong(offField), sizeField == 0 ? 0 : t.b.getLong(sizeField)};
    }

    private TfliteFormatException bad(String what) {
        return new TfliteFormatException(file, "not a valid .tflite FlatBuffer (" + what + ")");
    }

    /** Position {@code pos} holds {@code n} bytes inside the file. */
    private int need(long pos, long n, String what) throws TfliteFormatException {
        if (pos < 0 || n < 0 || pos > cap - n) {
            throw bad(what + " at " + pos + " lies outside the " + cap + "-byte file");
        }
        return (int) pos;
    }

    private int root() throws TfliteFormatException {
        if (cap < 8 || b.get(4) != 'T' || b.get(5) != 'F' || b.get(6) != 'L' || b.get(7) != '3') {
            throw new TfliteFormatException(file, "not a .tflite file (no TFL3 identifier)");
        }
        return deref(0);
    }

    /** Follows the uoffset stored at {@code pos}: the table, vector or string it points to. */
    private int deref(int pos) throws TfliteFormatException {
        need(pos, 4, "an offset");
        long target = pos + (b.getInt(pos) & 0xFFFFFFFFL);
        return need(target, 4, "a referenced object");
    }

    /**
     * The position of field {@code id} (a value of {@code size} bytes) of the table at
     * {@code table}, or 0 when absent; the vtable and the field are checked to lie in the file.
     */
    private int field(int table, int id, int size) throws TfliteFormatException {
        need(table, 4, "a table");
        long vtable = (long) table - b.getInt(table);
        need(vtable, 4, "a vtable");
        int vsize = b.getShort((int) vtable) & 0xFFFF;
        if (vsize < 4 || (vsize & 1) != 0) {
            throw bad("a vtable of " + vsize + " bytes");
        }
        need(vtable, vsize, "a vtable");
        int slot = 4 + 2 * id;
        if (slot + 2 > vsize) {
            return 0;
        }
        int off = b.getShort((int) vtable + slot) & 0xFFFF;
        if (off == 0) {
            return 0;
        }
        return need((long) table + off, size, "a field");
    }

    /** The element count of the vector at {@code vec}, checked to fit in the file. */
    private int vectorLength(int vec, int elemSize) throws TfliteFormatException {
        need(vec, 4, "a vector");
        long n = b.getInt(vec) & 0xFFFFFFFFL;
        need(vec + 4L, n * elemSize, "a vector of " + n + " elements");
        return (int) n;
    }

    private boolean nameEquals(int entry, byte[] want) throws TfliteFormatException {
        int nameField = field(entry, 0, 4);
        if (nameField == 0) {
            return false;
        }
        int s = deref(nameField);
        int len = vectorLength(s, 1);
        if (len != want.length) {
            return false;
        }
        for (int i = 0; i < len; i++) {
            if (b.get(s + 4 + i) != want[i]) {
                return false;
            }
        }
        return true;
    }

    private ByteBuffer find(String name) throws TfliteFormatException {
        int model = root();
        int metaField = field(model, MODEL_METADATA, 4);
        if (metaField == 0) {
            return null;
        }
        int metas = deref(metaField);
        int n = vectorLength(metas, 4);
        byte[] want = name.getBytes(UTF8);
        for (int i = 0; i < n; i++) {
            int entry = deref(metas + 4 + 4 * i);
            if (!nameEquals(entry, want)) {
                continue;
            }
            int bufField = field(entry, 1, 4);
            long bufIndex = bufField == 0 ? 0 : b.getInt(bufField) & 0xFFFFFFFFL;
            if (bufIndex > Integer.MAX_VALUE) {
                throw bad("metadata " + name + " names buffer " + bufIndex);
            }
            return buffer(model, (int) bufIndex);
        }
        return null;
    }

    private int bufferTable(int model, int index) throws TfliteFormatException {
        int buffersField = field(model, MODEL_BUFFERS, 4);
        if (buffersField == 0) {
            throw bad("buffer " + index + " is named but the model has no buffers");
        }
        int buffers = deref(buffersField);
        int n = vectorLength(buffers, 4);
        if (index < 0 || index >= n) {
            throw bad("buffer " + index + " is named, of " + n);
        }
        return deref(buffers + 4 + 4 * index);
    }

    private ByteBuffer slice(long off, long len) {
        ByteBuffer d = b.duplicate();
        d.clear();
        d.position((int) off).limit((int) (off + len));
        return d.slice().asReadOnlyBuffer();
    }

    private ByteBuffer buffer(int model, int index) throws TfliteFormatException {
        int buf = bufferTable(model, index);
        int dataField = field(buf, 0, 4);
        if (dataField != 0) {
            int vec = deref(dataField);
            int len = vectorLength(vec, 1);
            if (len > 0) {
                return slice(vec + 4L, len);
            }
        }
        // Models over 2 GB keep buffer data after the FlatBuffer: offset and size from the start.
        int offField = field(buf, 1, 8);
        int sizeField = field(buf, 2, 8);
        if (offField == 0 || sizeField == 0) {
            return slice(0, 0);
        }
        long off = b.getLong(offField);
        long size = b.getLong(sizeField);
        if (off < 0 || size < 0 || off > cap - size) {
            throw new TfliteFormatException(file, "metadata buffer at " + off + "+" + size + " lies outside the file");
        }
        return slice(off, size);
    }
}
