package io.tinyllamaj.data.eval;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Finds and reads a task's items: {@code DIR/<task>.jsonl} or {@code DIR/<task>.parquet}, the
 * files the Hugging Face datasets ship, in their own schemas. A file that cannot be read is
 * refused whole, with its place: no item is skipped silently.
 */
public final class TaskFiles {

    private static final ObjectMapper JSON = new ObjectMapper();

    private TaskFiles() {
    }

    /** The task's file in {@code dir}; refuses a directory with neither or both. */
    public static Path find(Path dir, EvalTask task) throws IOException {
        Path jsonl = dir.resolve(task.key() + ".jsonl"), parquet = dir.resolve(task.key() + ".parquet");
        boolean hasJsonl = Files.isRegularFile(jsonl), hasParquet = Files.isRegularFile(parquet);
        if (hasJsonl && hasParquet) {
            throw new IllegalArgumentException(dir + " has both " + jsonl.getFileName() + " and " + parquet.getFileName()
                    + ": keep one so it is clear which is scored");
        }
        if (!hasJsonl && !hasParquet) {
            throw new NoSuchFileException(jsonl.toString(), null, "task " + task.key() + ": neither " + jsonl.getFileName()
                    + " nor " + parquet.getFileName() + " in " + dir + " (docs/eval.md says where to get it)");
        }
        return hasJsonl ? jsonl : parquet;
    }

    /** The rows of a {@code .jsonl} or {@code .parquet} file, at most {@code limit} (all when negative). */
    public static List<TaskRow> read(Path file, int limit) throws IOException {
        return file.getFileName().toString().endsWith(".parquet") ? ParquetRows.read(file, limit) : readJsonl(file, limit);
    }

    private static List<TaskRow> readJsonl(Path file, int limit) throws IOException {
        List<TaskRow> rows = new ArrayList<>();
        var decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        long lineNumber = 0;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(Files.newInputStream(file), decoder))) {
            String line;
            while ((limit < 0 || rows.size() < limit) && (line = in.readLine()) != null) {
                lineNumber++;
                if (lineNumber == 1 && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                if (line.isBlank()) {
                    continue;
                }
                String place = file + ":" + lineNumber;
                JsonNode node;
                try (JsonParser parser = JSON.createParser(line)) {
                    node = JSON.readTree(parser);
                    if (afterValue(parser)) {
                        throw new IllegalArgumentException(place + ": malformed JSON: text after the object");
                    }
                } catch (JsonProcessingException e) {
                    throw new IllegalArgumentException(place + ": malformed JSON: " + e.getOriginalMessage());
                }
                if (!node.isObject()) {
                    throw new IllegalArgumentException(place + ": not a JSON object");
                }
                rows.add(new TaskRow(place, node));
            }
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(file + ":" + (lineNumber + 1) + ": not valid UTF-8");
        }
        if (rows.isEmpty()) {
            throw new IllegalArgumentException(file + ": no items");
        }
        return rows;
    }

    /** Whether anything but white space follows the value: `{...} garbage` would otherwise be read as its first object. */
    private static boolean afterValue(JsonParser parser) throws IOException {
        try {
            return parser.nextToken() != null;
        } catch (JsonProcessingException e) {
            return true;
        }
    }
}
