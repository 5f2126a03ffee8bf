package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class MetricsLogTest {

    @TempDir
    Path dir;

    @Test
    void aTornLastLineIsSkipped() throws IOException {
        Path file = dir.resolve(MetricsLog.FILE);
        Files.writeString(file, "{\"step\":1,\"loss\":4.1}\n{\"step\":2,\"loss\":4.0}\n{\"step\":3,\"lo");
        List<JsonNode> records = MetricsLog.read(file);
        assertEquals(List.of(1L, 2L), records.stream().map(r -> r.get("step").asLong()).toList());
    }

    @Test
    void aLineThatIsNotJsonBeforeTheLastIsDamageNamedByItsLine() throws IOException {
        // only a crash's last line may be torn; elsewhere a bad line means the file was damaged, not to be read as history
        Path file = dir.resolve(MetricsLog.FILE);
        for (String bad : List.of("not json", "{\"step\":2,\"loss\":4.0} trailing", "{\"step\":2,\"lo")) {
            Files.writeString(file, "{\"step\":1,\"loss\":4.1}\n" + bad + "\n{\"step\":3,\"loss\":3.9}\n\n");
            IOException e = assertThrows(IOException.class, () -> MetricsLog.read(file), bad);
            assertEquals("metrics file " + file + " line 2 is not a JSON record (damaged: only the last line may be cut short by a crash)",
                    e.getMessage());
        }
    }

    @Test
    void aFileThatIsNotUtf8IsNamed() throws IOException {
        Path file = dir.resolve(MetricsLog.FILE);
        Files.write(file, new byte[]{'{', '"', 's', (byte) 0xff, (byte) 0xfe, '"', ':', '1', '}', '\n'});
        IOException e = assertThrows(IOException.class, () -> MetricsLog.read(file));
        assertEquals("metrics file " + file + " is not UTF-8 text (damaged or not a metrics file)", e.getMessage());
    }

    @Test
    void aStepThatIsNotAWholeNumberIsRefusedNamingTheFileAndTheLine() throws IOException {
        Path file = dir.resolve(MetricsLog.FILE);
        for (String step : List.of("\"two\"", "2.5", "-2", "null", "true")) {
            Files.writeString(file, "{\"step\":1,\"loss\":4.1}\n\n{\"step\":" + step + ",\"loss\":4.0}\n");
            IOException e = assertThrows(IOException.class, () -> MetricsLog.read(file), step);
            assertEquals("metrics file " + file + " line 3: step is not a whole number >= 0 (got " + step + ")", e.getMessage());
        }
    }
}
