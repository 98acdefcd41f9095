package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;

/**
 * Finds a named metadata buffer in a .tflite file by walking its FlatBuffer (schema.fbs: Model
 * field 4 = buffers, field 6 = metadata; Metadata = {name, buffer}; Buffer = {data, offset, size}).
 * Only what that needs is read; every offset is bounds-checked by ByteBuffer.
 */
public final class TfliteMetadata {
    private final ByteBuffer b;

    private TfliteMetadata(ByteBuffer model) {
        b = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.clear();
    }

    /** The bytes of metadata entry {@code name}, or null when the model has none of that name. */
    public static byte[] find(byte[] model, String name) {
        return find(ByteBuffer.wrap(model), name);
    }

    /** The same on a (memory-mapped) buffer holding the whole model from index 0; it is not moved. */
    public static byte[] find(ByteBuffer model, String name) {
        try {
            return new TfliteMetadata(model).find(name);
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("not a valid .tflite FlatBuffer (an offset points outside the file)");
        }
    }

    /**
     * Buffer {@code index} of the model as {data length, offset, size}: a Buffer holds its bytes
     * inline (data) or names them by offset and size from the start of the model.
     */
    public static long[] bufferInfo(ByteBuffer model, int index) {
        try {
            TfliteMetadata t = new TfliteMetadata(model);
            int buf = t.bufferTable(t.deref(0), index);
            int dataField = t.field(buf, 0);
            long dataLen = dataField == 0 ? 0 : t.b.getInt(t.deref(dataField));
            int offField = t.field(buf, 1);
            int sizeField = t.field(buf, 2);
            return new long[] {dataLen, offField == 0 ? 0 : t.b.getLong(offField), sizeField == 0 ? 0 : t.b.getLong(sizeField)};
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("not a valid .tflite FlatBuffer (an offset points outside the file)");
        }
    }

    /** The position of field {@code id} of the table at {@code table}, or 0 when absent. */
    private int field(int table, int id) {
        int vtable = table - b.getInt(table);
        int vsize = b.getShort(vtable) & 0xFFFF;
        int slot = 4 + 2 * id;
        if (slot >= vsize) {
            return 0;
        }
        int off = b.getShort(vtable + slot) & 0xFFFF;
        return off == 0 ? 0 : table + off;
    }

    private int deref(int pos) {
        return pos + b.getInt(pos);
    }

    private String string(int pos) {
        int s = deref(pos);
        int len = b.getInt(s);
        byte[] out = new byte[len];
        ((ByteBuffer) b.duplicate().position(s + 4)).get(out);
        return new String(out, Charset.forName("UTF-8"));
    }

    private byte[] find(String name) {
        if (b.capacity() < 8) {
            throw new IllegalArgumentException("not a .tflite file (too short)");
        }
        int model = deref(0);
        int metaField = field(model, 6);
        if (metaField == 0) {
            return null;
        }
        int metas = deref(metaField);
        int n = b.getInt(metas);
        for (int i = 0; i < n; i++) {
            int entry = deref(metas + 4 + 4 * i);
            int nameField = field(entry, 0);
            if (nameField == 0 || !name.equals(string(nameField))) {
                continue;
            }
            int bufField = field(entry, 1);
            int bufIndex = bufField == 0 ? 0 : b.getInt(bufField);
            return buffer(model, bufIndex);
        }
        return null;
    }

    private int bufferTable(int model, int index) {
        int buffersField = field(model, 4);
        if (buffersField == 0) {
            throw new IllegalArgumentException("buffer " + index + " is named but the model has no buffers");
        }
        int buffers = deref(buffersField);
        int n = b.getInt(buffers);
        if (index < 0 || index >= n) {
            throw new IllegalArgumentException("buffer " + index + " is named, of " + n);
        }
        return deref(buffers + 4 + 4 * index);
    }

    private byte[] buffer(int model, int index) {
        int buf = bufferTable(model, index);
        int dataField = field(buf, 0);
        if (dataField != 0) {
            int vec = deref(dataField);
            byte[] out = new byte[b.getInt(vec)];
            ((ByteBuffer) b.duplicate().position(vec + 4)).get(out);
            if (out.length > 0) {
                return out;
            }
        }
        // Models over 2 GB keep buffer data after the FlatBuffer: offset and size from the start.
        int offField = field(buf, 1);
        int sizeField = field(buf, 2);
        if (offField == 0 || sizeField == 0) {
            return new byte[0];
        }
        long off = b.getLong(offField);
        long size = b.getLong(sizeField);
        if (off < 0 || size < 0 || off + size > b.capacity()) {
            throw new IllegalArgumentException("metadata buffer at " + off + "+" + size + " lies outside the file");
        }
        byte[] out = new byte[(int) size];
        ((ByteBuffer) b.duplicate().position((int) off)).get(out);
        return out;
    }
}
