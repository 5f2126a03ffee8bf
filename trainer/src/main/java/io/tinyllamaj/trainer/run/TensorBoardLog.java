package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.files.DurableFiles;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * {@code <run>/tb/events.out.tfevents.<epoch seconds>.<host>}: the metrics records as TensorBoard
 * scalars. Every numeric top-level field but {@code step} is a scalar of that tag, each number of
 * a nested object (val_loss_per_source) a {@code <key>/<name>} scalar; memory records are left
 * out. A new file per process start (TensorBoard reads every file of the folder, so a resume
 * adds one). Each record goes to the file as it is written; a failed write is reported once
 * and the run goes on without TensorBoard, which is a view, not the record of the run.
 */
public final class TensorBoardLog implements AutoCloseable {

    public static final String DIRECTORY = "tb";
    static final String FILE_PREFIX = "events.out.tfevents.";
    private static final String FILE_VERSION = "brain.Event:2";
    private static final int MASK_DELTA = 0xa282ead8;
    /** SessionLog{status = 1 (varint) START = 1}. */
    private static final byte[] SESSION_START = {1 << 3, 1};

    private final Path file;
    private final PrintStream log;
    private FileChannel out;

    private TensorBoardLog(Path file, FileChannel out, PrintStream log) {
        this.file = file;
        this.out = out;
        this.log = log;
    }

    /** A log that writes nothing: TensorBoard off, or ranks other than 0. */
    public static TensorBoardLog none() {
        return new TensorBoardLog(null, null, null);
    }

    /** Opens a new event file under {@code <runDirectory>/tb/}; a failure is reported on {@code log} and writes nothing. */
    public static TensorBoardLog open(Path runDirectory, DurableFiles disk, PrintStream log) {
        return open(runDirectory, disk, log, 0);
    }

    /**
     * As {@link #open(Path, DurableFiles, PrintStream)} for a run that continues after step
     * {@code resumedAt} (0: a new run). A resumed run's file begins with a SessionLog START at
     * its first step: TensorBoard then drops the points at and after that step from the files
     * before it (what an earlier process logged past its last checkpoint), as metrics.jsonl
     * was cut back to the checkpoint.
     */
    public static TensorBoardLog open(Path runDirectory, DurableFiles disk, PrintStream log, long resumedAt) {
        Path directory = runDirectory.resolve(DIRECTORY);
        String base = FILE_PREFIX + System.currentTimeMillis() / 1000 + "." + hostName();
        Path file = directory.resolve(base);
        // two starts within one second (a quick resume) must not share a file: each begins with its version record
        for (int n = 1; Files.exists(file); n++) {
            file = directory.resolve(base + "." + n);
        }
        TensorBoardLog tensorboard = new TensorBoardLog(file, null, log);
        try {
            DurableFiles.createDirectories(directory);
            tensorboard.out = disk.binaryAppender(file);
            tensorboard.append(event(wallTime(), 0, field(3, FILE_VERSION.getBytes(StandardCharsets.UTF_8))));
            if (resumedAt > 0) {
                tensorboard.append(event(wallTime(), resumedAt + 1, field(7, SESSION_START)));
            }
        } catch (IOException e) {
            tensorboard.fail(e);
        }
        return tensorboard;
    }

    /** Writes the scalars of one metrics record (nothing for a memory record or one without a whole step). */
    public void write(JsonNode record) {
        if (out == null || record.has(MetricsLog.MEMORY) || !record.path("step").canConvertToExactIntegral()) {
            return;
        }
        ByteArrayOutputStream summary = new ByteArrayOutputStream();
        for (Map.Entry<String, JsonNode> field : record.properties()) {
            JsonNode value = field.getValue();
            if (field.getKey().equals("step")) {
                continue;
            }
            if (value.isNumber()) {
                summary.writeBytes(field(1, scalar(field.getKey(), value.floatValue())));
            } else if (value.isObject()) {
                for (Map.Entry<String, JsonNode> part : value.properties()) {
                    if (part.getValue().isNumber()) {
                        summary.writeBytes(field(1, scalar(field.getKey() + "/" + part.getKey(), part.getValue().floatValue())));
                    }
                }
            }
        }
        try {
            append(event(wallTime(), record.get("step").asLong(), field(5, summary.toByteArray())));
        } catch (IOException e) {
            fail(e);
        }
    }

    /** TFRecord framing: length, its masked CRC-32C, the data, its masked CRC-32C (all little-endian). */
    private void append(byte[] data) throws IOException {
        ByteBuffer frame = ByteBuffer.allocate(8 + 4 + data.length + 4).order(ByteOrder.LITTLE_ENDIAN);
        frame.putLong(data.length);
        frame.putInt(maskedCrc(frame.array(), 0, 8));
        frame.put(data);
        frame.putInt(maskedCrc(data, 0, data.length));
        frame.flip();
        try {
            DurableFiles.writeFully(out, frame);
        } catch (IOException e) {
            throw DurableFiles.failure(file, e);
        }
    }

    static int maskedCrc(byte[] bytes, int offset, int length) {
        CRC32C crc = new CRC32C();
        crc.update(bytes, offset, length);
        int value = (int) crc.getValue();
        return ((value >>> 15) | (value << 17)) + MASK_DELTA;
    }

    /** Event{wall_time = 1 (double), step = 2 (int64), then one more field (file_version 3, summary 5 or session_log 7)}. */
    private static byte[] event(double wallTime, long step, byte[] what) {
        ByteArrayOutputStream event = new ByteArrayOutputStream();
        event.write(1 << 3 | 1);
        event.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(wallTime).array());
        event.write(2 << 3);
        writeVarint(event, step);
        event.writeBytes(what);
        return event.toByteArray();
    }

    /** Summary.Value{tag = 1 (string), simple_value = 2 (float)}. */
    private static byte[] scalar(String tag, float value) {
        ByteArrayOutputStream scalar = new ByteArrayOutputStream();
        scalar.writeBytes(field(1, tag.getBytes(StandardCharsets.UTF_8)));
        scalar.write(2 << 3 | 5);
        scalar.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(value).array());
        return scalar.toByteArray();
    }

    /** A length-delimited protobuf field (strings and messages). */
    private static byte[] field(int number, byte[] content) {
        ByteArrayOutputStream field = new ByteArrayOutputStream();
        field.write(number << 3 | 2);
        writeVarint(field, content.length);
        field.writeBytes(content);
        return field.toByteArray();
    }

    private static void writeVarint(ByteArrayOutputStream out, long value) {
        while ((value & ~0x7FL) != 0) {
            out.write((int) (value & 0x7F) | 0x80);
            value >>>= 7;
        }
        out.write((int) value);
    }

    private static double wallTime() {
        return System.currentTimeMillis() / 1000.0;
    }

    private static String hostName() {
        String name;
        try {
            name = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            name = "localhost";
        }
        // a file name, whatever the resolver returned
        String safe = name.replaceAll("[^A-Za-z0-9._-]", "_");
        return safe.isEmpty() ? "localhost" : safe;
    }

    private void fail(IOException e) {
        log.println("TensorBoard events are no longer written: " + e.getMessage());
        closeQuietly();
    }

    private void closeQuietly() {
        if (out != null) {
            try {
                out.close();
            } catch (IOException ignored) {
                // already reported or about to be: the run does not depend on this file
            }
            out = null;
        }
    }

    @Override
    public void close() {
        closeQuietly();
    }
}
