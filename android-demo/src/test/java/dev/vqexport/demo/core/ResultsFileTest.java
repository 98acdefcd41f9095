package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ResultsFileTest {
    @TempDir
    Path dir;

    @Test
    void replacesTheTargetWholeAndLeavesNoTemporaryFile() throws IOException {
        File f = dir.resolve("results.json").toFile();
        Files.writeString(f.toPath(), "{\"old\": true}");
        ResultsFile.writeAtomic(f, "{\"new\": \"é\"}\n");
        assertEquals("{\"new\": \"é\"}\n", Files.readString(f.toPath(), StandardCharsets.UTF_8));
        try (var s = Files.list(dir)) {
            assertEquals(1, s.count(), "only results.json: no temporary file, no timestamped copies");
        }
    }

    @Test
    void refusesToReplaceAFolder() throws IOException {
        File d = dir.resolve("results.json").toFile();
        assertTrue(d.mkdir());
        IOException e = assertThrows(IOException.class, () -> ResultsFile.writeAtomic(d, "{}"));
        assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        assertTrue(d.isDirectory());
    }
}
