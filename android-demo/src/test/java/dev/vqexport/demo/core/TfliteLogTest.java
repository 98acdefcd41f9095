package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** Log lines as TFLite 2.16's interpreter builder writes them (tag "tflite"). */
class TfliteLogTest {
    @Test
    void allNodesDelegated() {
        Map<String, Object> x = TfliteLog.xnnpack("building interpreter for a.tflite @1\n"
                + "Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                + "Replacing 7 out of 7 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for the whole graph.\n");
        assertEquals(true, x.get("applied"));
        assertEquals(7L, x.get("delegated_nodes"));
        assertEquals(7L, x.get("total_nodes"));
        assertEquals(1L, x.get("partitions"));
    }

    @Test
    void partialDelegationSumsSubgraphs() {
        Map<String, Object> x = TfliteLog.xnnpack("Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                + "Replacing 3 out of 5 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for subgraph 0.\n"
                + "Replacing 1 out of 2 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 1.\n"
                + "Replacing 2 out of 2 node(s) with delegate (OtherDelegate) node, yielding 1 partitions.\n");
        assertEquals(true, x.get("applied"));
        assertEquals(4L, x.get("delegated_nodes"));
        assertEquals(7L, x.get("total_nodes"));
        assertEquals(3L, x.get("partitions"));
    }

    @Test
    void aFailedDelegateIsNotApplied() {
        Map<String, Object> x = TfliteLog.xnnpack("Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                + "Failed to apply the default TensorFlow Lite delegate indexed at 0.\n");
        assertEquals(false, x.get("applied"));
    }

    @Test
    void silenceIsUnknown() {
        assertNull(TfliteLog.xnnpack("").get("applied"));
        assertNull(TfliteLog.xnnpack(null).get("applied"));
    }
}
