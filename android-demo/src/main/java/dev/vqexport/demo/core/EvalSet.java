package dev.vqexport.demo.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The bundled evaluation set (assets/eval/mnist1000.vqds), a format of this demo:
 *
 * <pre>
 * offset 0   4 bytes  magic "VQDS"
 *        4   u32      version = 1
 *        8   u32      count    (images)
 *       12   u32      channels (1 for MNIST)
 *       16   u32      height
 *       20   u32      width
 *       24   u8 x count*channels*height*width   pixels, image after image, each C,H,W row-major, 0..255
 *        .   u8 x count                          labels (class index)
 * </pre>
 * All integers little-endian; the file ends right after the labels. A pixel p feeds the model
 * as (p / 255 - mean[c]) / std[c], mean and std from the model's metadata.
 */
public final class EvalSet {
    public static final int HEADER = 24;
    public final int count;
    public final int channels;
    public final int height;
    public final int width;
    private final byte[] data;

    private EvalSet(byte[] data, int count, int channels, int height, int width) {
        this.data = data;
        this.count = count;
        this.channels = channels;
        this.height = height;
        this.width = width;
    }

    public static EvalSet read(InputStream in, String name) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] chunk = new byte[1 << 16];
        int r;
        while ((r = in.read(chunk)) > 0) {
            out.write(chunk, 0, r);
        }
        return parse(out.toByteArray(), name);
    }

    public static EvalSet parse(byte[] data, String name) throws IOException {
        if (data.length < HEADER || data[0] != 'V' || data[1] != 'Q' || data[2] != 'D' || data[3] != 'S') {
            throw new IOException(name + ": not an eval set (magic VQDS expected)");
        }
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        int version = b.getInt(4);
        if (version != 1) {
            throw new IOException(name + ": eval set version " + version + ", this app reads 1");
        }
        long count = b.getInt(8) & 0xFFFFFFFFL;
        long c = b.getInt(12) & 0xFFFFFFFFL;
        long h = b.getInt(16) & 0xFFFFFFFFL;
        long w = b.getInt(20) & 0xFFFFFFFFL;
        if (c < 1 || h < 1 || w < 1 || c * h * w > (1 << 24)) {
            throw new IOException(name + ": bad image size " + c + "x" + h + "x" + w);
        }
        long expect = HEADER + count * c * h * w + count;
        if (expect != data.length) {
            throw new IOException(name + ": " + data.length + " bytes where " + count + " images of " + c + "x" + h
                    + "x" + w + " need " + expect);
        }
        return new EvalSet(data, (int) count, (int) c, (int) h, (int) w);
    }

    public int imageSize() {
        return channels * height * width;
    }

    /** The label of image i. */
    public int label(int i) {
        return data[HEADER + count * imageSize() + i] & 0xFF;
    }

    /** The pixel (0..255) of image i at channel c, row y, column x. */
    public int pixel(int i, int c, int y, int x) {
        return data[HEADER + i * imageSize() + (c * height + y) * width + x] & 0xFF;
    }
}
