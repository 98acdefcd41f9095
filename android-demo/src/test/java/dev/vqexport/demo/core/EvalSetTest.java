package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class EvalSetTest {
    /** count images of c x h x w; pixel value = image*10 + position, label = image % 10. */
    static byte[] make(int count, int c, int h, int w) {
        int size = c * h * w;
        ByteBuffer b = ByteBuffer.allocate(24 + count * size + count).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {'V', 'Q', 'D', 'S'}).putInt(1).putInt(count).putInt(c).putInt(h).putInt(w);
        for (int i = 0; i < count; i++) {
            for (int p = 0; p < size; p++) {
                b.put((byte) (i * 10 + p));
            }
        }
        for (int i = 0; i < count; i++) {
            b.put((byte) (i % 10));
        }
        return b.array();
    }

    @Test
    void readsPixelsAndLabels() throws IOException {
        EvalSet e = EvalSet.parse(make(3, 2, 2, 3), "t");
        assertEquals(3, e.count);
        assertEquals(12, e.imageSize());
        assertEquals(2, e.label(2));
        // image 1, channel 1, row 1, column 2 -> position (1*2+1)*3+2 = 11
        assertEquals(10 + 11, e.pixel(1, 1, 1, 2));
    }

    @Test
    void rejectsBadFiles() {
        byte[] good = make(2, 1, 2, 2);
        byte[] shortFile = java.util.Arrays.copyOf(good, good.length - 1);
        IOException e = assertThrows(IOException.class, () -> EvalSet.parse(shortFile, "x.vqds"));
        assertTrue(e.getMessage().startsWith("x.vqds: "), e.getMessage());
        byte[] magic = good.clone();
        magic[0] = 'X';
        assertThrows(IOException.class, () -> EvalSet.parse(magic, "x"));
        byte[] version = good.clone();
        version[4] = 2;
        assertThrows(IOException.class, () -> EvalSet.parse(version, "x"));
    }
}
