package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.trainer.TestRuns;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The event file of a short CPU run, read by a decoder written here from the TFRecord and
 * Event/Summary definitions (its own CRC-32C table and protobuf parsing), against the run's
 * metrics.jsonl.
 */
class TensorBoardLogTest {

    @TempDir
    static Path shared;
    static Path run;
    static Path recipe;

    @BeforeAll
    static void shortRun() throws Exception {
        recipe = TestRuns.writeRecipe(shared, "test-tiny", 61, 16, 2, 4, 8, "");
        run = shared.resolve("run");
        TestRuns.pretrain(recipe, run, null, "logging.tensorboard=true");
    }

    @Test
    void eventFileHoldsTheMetricsAsScalars() throws Exception {
        List<Event> events = Decoder.read(Files.readAllBytes(onlyEventFile()));
        assertEquals("brain.Event:2", events.getFirst().fileVersion);
        assertTrue(events.getFirst().wallTime > 1.6e9, "wall time in epoch seconds");

        List<JsonNode> metrics = MetricsLog.read(run.resolve(MetricsLog.FILE));
        List<Event> scalars = events.subList(1, events.size());
        assertEquals(metrics.size(), scalars.size());
        int evals = 0;
        for (int i = 0; i < metrics.size(); i++) {
            JsonNode record = metrics.get(i);
            Event event = scalars.get(i);
            assertEquals(record.get("step").asLong(), event.step);
            assertEquals(null, event.fileVersion);
            assertEquals((float) record.get("loss").asDouble(), event.values.get("loss"), "loss at step " + event.step);
            assertEquals((float) record.get("lr").asDouble(), event.values.get("lr"), "lr at step " + event.step);
            assertFalse(event.values.containsKey("step"));
            if (record.has("val_loss")) {
                evals++;
                assertEquals((float) record.get("val_loss").asDouble(), event.values.get("val_loss"));
                assertEquals((float) record.get("val_loss_per_source").get("prose").asDouble(),
                        event.values.get("val_loss_per_source/prose"));
            } else {
                assertFalse(event.values.containsKey("val_loss"), "no validation at step " + event.step);
            }
        }
        assertEquals(2, evals, "validation every 4 of 8 steps");
    }

    /**
     * A run resumed from its step-4 checkpoint with another LR (so its steps 5-8 differ from the
     * first process's): the new file starts with a SessionLog START at step 5, and the curve
     * TensorBoard shows (each START drops the points at or after its step that earlier files
     * hold) is exactly the resumed run's metrics.jsonl.
     */
    @Test
    void aResumedRunsFileStartsWithAStartThatReplacesTheOrphanedSteps() throws Exception {
        Path resumed = TestRuns.copyUpTo(run, shared.resolve("resumed"), 4);
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, resumed, "auto", "logging.tensorboard=true", "train.lr=5.0e-3"));
        List<Path> files;
        try (Stream<Path> listed = Files.list(resumed.resolve(TensorBoardLog.DIRECTORY))) {
            files = listed.sorted().toList(); // TensorBoard reads a folder's event files in name order
        }
        assertEquals(2, files.size(), files.toString());
        List<Event> second = Decoder.read(Files.readAllBytes(files.get(1)));
        assertEquals("brain.Event:2", second.getFirst().fileVersion);
        assertEquals(1, second.get(1).startStatus, "START");
        assertEquals(5, second.get(1).step);

        java.util.TreeMap<Long, Float> shown = new java.util.TreeMap<>();
        for (Path file : files) {
            for (Event event : Decoder.read(Files.readAllBytes(file))) {
                if (event.startStatus == 1) {
                    shown.tailMap(event.step, true).clear();
                } else if (event.values.containsKey("loss")) {
                    shown.put(event.step, event.values.get("loss"));
                }
            }
        }
        java.util.TreeMap<Long, Float> expected = new java.util.TreeMap<>();
        for (JsonNode record : MetricsLog.read(resumed.resolve(MetricsLog.FILE))) {
            expected.put(record.get("step").asLong(), (float) record.get("loss").asDouble());
        }
        assertEquals(expected, shown);
        List<JsonNode> first = MetricsLog.read(run.resolve(MetricsLog.FILE));
        assertTrue((float) first.get(6).get("loss").asDouble() != expected.get(7L), "the resumed steps differ from the first process's");
    }

    @Test
    void aFlippedByteIsCaught() throws Exception {
        byte[] bytes = Files.readAllBytes(onlyEventFile());
        for (int at : new int[]{3, 10, 20, bytes.length - 2}) {
            byte[] damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assertThrows(IOException.class, () -> Decoder.read(damaged), "byte " + at);
        }
    }

    @Test
    void aFileThatCannotBeWrittenIsReportedOnceAndTrainingGoesOn() throws Exception {
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        PrintStream log = new PrintStream(text, true, StandardCharsets.UTF_8);
        DurableFiles full = new DurableFiles((file, options) -> {
            throw new IOException("No space left on device");
        });
        try (TensorBoardLog tensorboard = TensorBoardLog.open(shared.resolve("full"), full, log)) {
            tensorboard.write(MetricsLog.newRecord().put("step", 1).put("loss", 2.5));
            tensorboard.write(MetricsLog.newRecord().put("step", 2).put("loss", 2.4));
        }
        List<String> lines = text.toString(StandardCharsets.UTF_8).lines().toList();
        assertEquals(1, lines.size(), String.join("\n", lines));
        assertTrue(lines.getFirst().contains("No space left on device"), lines.getFirst());
    }

    private static Path onlyEventFile() throws IOException {
        try (Stream<Path> files = Files.list(run.resolve(TensorBoardLog.DIRECTORY))) {
            List<Path> all = files.toList();
            assertEquals(1, all.size(), all.toString());
            assertTrue(all.getFirst().getFileName().toString().startsWith("events.out.tfevents."));
            return all.getFirst();
        }
    }

    /** @param startStatus SessionLog's status (1: START), 0 without a session_log */
    record Event(double wallTime, long step, String fileVersion, int startStatus, Map<String, Float> values) {
    }

    /** TFRecord and the Event protobuf, decoded from their specifications. */
    static final class Decoder {
        private static final int[] TABLE = new int[256];

        static {
            for (int n = 0; n < 256; n++) {
                int c = n;
                for (int k = 0; k < 8; k++) {
                    c = (c & 1) != 0 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1;
                }
                TABLE[n] = c;
            }
        }

        static int crc32c(byte[] b, int from, int to) {
            int c = ~0;
            for (int i = from; i < to; i++) {
                c = TABLE[(c ^ b[i]) & 0xFF] ^ (c >>> 8);
            }
            return ~c;
        }

        static int masked(int crc) {
            return ((crc >>> 15) | (crc << 17)) + 0xa282ead8;
        }

        static long le(byte[] b, int at, int n) {
            long v = 0;
            for (int i = n - 1; i >= 0; i--) {
                v = v << 8 | (b[at + i] & 0xFF);
            }
            return v;
        }

        static List<Event> read(byte[] b) throws IOException {
            List<Event> events = new ArrayList<>();
            int at = 0;
            while (at < b.length) {
                if (at + 12 > b.length) {
                    throw new IOException("truncated header at " + at);
                }
                long length = le(b, at, 8);
                if ((int) le(b, at + 8, 4) != masked(crc32c(b, at, at + 8))) {
                    throw new IOException("length CRC at " + at);
                }
                if (length < 0 || at + 12 + length + 4 > b.length) {
                    throw new IOException("length " + length + " at " + at);
                }
                int start = at + 12, end = (int) (start + length);
                if ((int) le(b, end, 4) != masked(crc32c(b, start, end))) {
                    throw new IOException("data CRC at " + at);
                }
                events.add(event(b, start, end));
                at = end + 4;
            }
            return events;
        }

        private static Event event(byte[] b, int from, int to) throws IOException {
            Reader r = new Reader(b, from, to);
            double wall = 0;
            long step = 0;
            String version = null;
            int startStatus = 0;
            Map<String, Float> values = new LinkedHashMap<>();
            while (r.more()) {
                long key = r.varint();
                int field = (int) (key >>> 3), type = (int) (key & 7);
                if (field == 1 && type == 1) {
                    wall = Double.longBitsToDouble(r.fixed(8));
                } else if (field == 2 && type == 0) {
                    step = r.varint();
                } else if (field == 3 && type == 2) {
                    version = r.string();
                } else if (field == 7 && type == 2) {
                    Reader statusLog = r.message();
                    if (statusLog.varint() != (1 << 3) || (startStatus = (int) statusLog.varint()) < 0 || statusLog.more()) {
                        throw new IOException("session_log other than a status");
                    }
                } else if (field == 5 && type == 2) {
                    Reader summary = r.message();
                    while (summary.more()) {
                        if (summary.varint() != (1 << 3 | 2)) {
                            throw new IOException("summary field");
                        }
                        Reader value = summary.message();
                        String tag = null;
                        Float simple = null;
                        while (value.more()) {
                            long k = value.varint();
                            if (k == (1 << 3 | 2)) {
                                tag = value.string();
                            } else if (k == (2 << 3 | 5)) {
                                simple = Float.intBitsToFloat((int) value.fixed(4));
                            } else {
                                throw new IOException("value field " + k);
                            }
                        }
                        if (tag == null || simple == null || values.put(tag, simple) != null) {
                            throw new IOException("value without tag or number, or repeated: " + tag);
                        }
                    }
                } else {
                    throw new IOException("event field " + field + " type " + type);
                }
            }
            return new Event(wall, step, version, startStatus, values);
        }

        private static final class Reader {
            final byte[] b;
            int at;
            final int end;

            Reader(byte[] b, int at, int end) {
                this.b = b;
                this.at = at;
                this.end = end;
            }

            boolean more() {
                return at < end;
            }

            long varint() throws IOException {
                long v = 0;
                for (int shift = 0; shift < 64; shift += 7) {
                    if (at >= end) {
                        throw new IOException("varint past the end");
                    }
                    int x = b[at++] & 0xFF;
                    v |= (long) (x & 0x7F) << shift;
                    if ((x & 0x80) == 0) {
                        return v;
                    }
                }
                throw new IOException("varint too long");
            }

            long fixed(int n) throws IOException {
                if (at + n > end) {
                    throw new IOException("fixed past the end");
                }
                long v = le(b, at, n);
                at += n;
                return v;
            }

            Reader message() throws IOException {
                long n = varint();
                if (n < 0 || at + n > end) {
                    throw new IOException("length past the end");
                }
                Reader inner = new Reader(b, at, (int) (at + n));
                at += (int) n;
                return inner;
            }

            String string() throws IOException {
                Reader s = message();
                return new String(b, s.at, s.end - s.at, StandardCharsets.UTF_8);
            }
        }
    }
}
