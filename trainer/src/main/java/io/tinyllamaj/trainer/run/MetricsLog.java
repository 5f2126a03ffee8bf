package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code <run>/metrics.jsonl}: one JSON object per logged step (step, loss, lr, grad_norm,
 * tokens, tokens_per_s, mfu, tokens_per_source, val_loss and val_loss_per_source when
 * computed, ...), each line flushed as written, and after a process's first step one {@code memory} record per rank
 * ({@link RankMemory}: {"memory": {...bytes per category...}, "rank": r, "step": s, ...}).
 * On resume the lines past the checkpoint's step are dropped first (they describe steps that
 * will be trained again), so the file reads as one uninterrupted run. Each record also goes to
 * the run's {@link TensorBoardLog} (one that writes nothing unless logging.tensorboard is on).
 */
public final class MetricsLog implements AutoCloseable {

    public static final String FILE = "metrics.jsonl";
    /** The key that marks a record as a memory account rather than a step's metrics. */
    static final String MEMORY = "memory";
    private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final int SHOWN_VALUE_CHARS = 40;

    private final Path file;
    private final BufferedWriter out;
    private final TensorBoardLog tensorboard;

    private MetricsLog(Path file, BufferedWriter out, TensorBoardLog tensorboard) {
        this.file = file;
        this.out = out;
        this.tensorboard = tensorboard;
    }

    /**
     * Opens the log for a run that continues after {@code resumedStep} ({@code resumed} false:
     * a fresh run, the file is replaced), writing through {@code disk}; every record is also
     * handed to {@code tensorboard}, which this log closes.
     */
    public static MetricsLog open(Path runDirectory, long resumedStep, boolean resumed, DurableFiles disk,
                                  TensorBoardLog tensorboard) throws IOException {
        Path file = runDirectory.resolve(FILE);
        if (resumed && Files.exists(file)) {
            StringBuilder kept = new StringBuilder();
            for (JsonNode line : readAll(file)) {
                if (line.path("step").asLong() <= resumedStep) {
                    kept.append(JSON.writeValueAsString(line)).append('\n');
                }
            }
            disk.replace(file, kept.toString().getBytes(StandardCharsets.UTF_8));
        } else {
            DurableFiles.delete(file);
        }
        return new MetricsLog(file, new BufferedWriter(disk.appender(file)), tensorboard);
    }

    /** A log that writes nothing: ranks other than 0. */
    public static MetricsLog discard() {
        return new MetricsLog(Path.of(FILE), new BufferedWriter(java.io.Writer.nullWriter()), TensorBoardLog.none());
    }

    public static ObjectNode newRecord() {
        return JSON.createObjectNode();
    }

    public void write(ObjectNode record) {
        try {
            out.write(JSON.writeValueAsString(record));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            IOException failure = DurableFiles.failure(file, e);
            throw new UncheckedIOException(failure.getMessage(), failure);
        }
        tensorboard.write(record);
    }

    /**
     * The step records of a metrics file (not the memory records); a line torn by a crash is
     * skipped. A step that is not a whole number is refused naming the file and the line: read
     * as 0 it would survive every cut-back on resume and land first in the charts.
     */
    public static List<JsonNode> read(Path file) throws IOException {
        return readAll(file).stream().filter(record -> !record.has(MEMORY)).toList();
    }

    /** The {@code memory} records of a metrics file ({@link RankMemory#fromRecord} reads one). */
    public static List<JsonNode> readMemory(Path file) throws IOException {
        return readAll(file).stream().filter(record -> record.has(MEMORY)).toList();
    }

    /**
     * Every complete record of a metrics file. The last line may be torn by a crash and is then
     * skipped (it is written again on resume); a line that is not JSON anywhere else is damage,
     * refused naming the file and the line.
     */
    private static List<JsonNode> readAll(Path file) throws IOException {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (CharacterCodingException e) {
            throw new IOException("metrics file " + file + " is not UTF-8 text (damaged or not a metrics file)");
        }
        int last = lines.size();
        while (last > 0 && lines.get(last - 1).isBlank()) {
            last--;
        }
        List<JsonNode> records = new ArrayList<>();
        int number = 0;
        for (String line : lines) {
            number++;
            if (line.isBlank()) {
                continue;
            }
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JacksonException torn) {
                if (number == last) {
                    continue;
                }
                throw new IOException("metrics file " + file + " line " + number + " is not a JSON record (damaged: only the last "
                        + "line may be cut short by a crash)");
            }
            if (node != null && node.isObject() && node.has("step")) {
                JsonNode step = node.get("step");
                if (!step.canConvertToExactIntegral() || !step.canConvertToLong() || step.asLong() < 0) {
                    throw new IOException("metrics file " + file + " line " + number + ": step is not a whole number >= 0 (got "
                            + shown(step) + ")");
                }
                records.add(node);
            }
        }
        return records;
    }

    private static String shown(JsonNode value) {
        String text = value.toString();
        return text.length() > SHOWN_VALUE_CHARS ? text.substring(0, SHOWN_VALUE_CHARS) + "..." : text;
    }

    @Override
    public void close() throws IOException {
        tensorboard.close();
        out.close();
    }
}
