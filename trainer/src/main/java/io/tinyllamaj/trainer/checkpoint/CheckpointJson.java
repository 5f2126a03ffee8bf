package io.tinyllamaj.trainer.checkpoint;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One JSON object of a checkpoint file (state.json, manifest.json, a part file), read strictly:
 * a missing or mistyped key is refused naming the file and the key, never read as 0 or "".
 *
 * @param file  the file, for messages
 * @param where the keys leading to this object ("" at the top, "files.params.f32." below)
 * @param node  the object
 */
public record CheckpointJson(Path file, String where, ObjectNode node) {

    /** Records (a sampler position, a model shape) must name every field: a missing one is not 0. */
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_CREATOR_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);

    private static final int SHOWN_VALUE_CHARS = 40;

    /** A manifest of many ranks is tens of KiB; a larger file is not one of ours (or is /dev/zero behind a link). */
    static final long MAX_BYTES = 64L << 20;

    public static CheckpointJson read(Path file) throws IOException {
        if (!Files.exists(file)) {
            throw new NoSuchFileException(file.toString());
        }
        if (!Files.isRegularFile(file)) {
            throw new CorruptCheckpointException("checkpoint file " + file + " is not a regular file");
        }
        if (Files.size(file) > MAX_BYTES) {
            throw new CorruptCheckpointException("checkpoint file " + file + " holds " + Files.size(file) + " bytes, more than "
                    + "the " + MAX_BYTES + " a checkpoint's JSON may");
        }
        return parse(file, Files.readAllBytes(file));
    }

    public static CheckpointJson parse(Path file, byte[] bytes) throws IOException {
        JsonNode tree;
        try {
            tree = JSON.readTree(bytes);
        } catch (JacksonException e) {
            throw new CorruptCheckpointException("checkpoint file " + file + " is not valid JSON" + (e.getLocation() == null ? ""
                    : " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")"));
        }
        if (!(tree instanceof ObjectNode object)) {
            throw new CorruptCheckpointException("checkpoint file " + file + " is not a JSON object");
        }
        return new CheckpointJson(file, "", object);
    }

    /** A whole number >= 0: a step, a count, a size, an offset. */
    public long count(String key) throws CorruptCheckpointException {
        JsonNode value = required(key);
        if (!value.canConvertToExactIntegral() || !value.canConvertToLong() || value.asLong() < 0) {
            throw wrong(key, "a whole number >= 0", value);
        }
        return value.asLong();
    }

    /** {@link #count} that also fits an int. */
    public int smallCount(String key) throws CorruptCheckpointException {
        long count = count(key);
        if (count > Integer.MAX_VALUE) {
            throw wrong(key, "a whole number up to " + Integer.MAX_VALUE, node.get(key));
        }
        return (int) count;
    }

    public String text(String key) throws CorruptCheckpointException {
        JsonNode value = required(key);
        if (!value.isTextual()) {
            throw wrong(key, "a string", value);
        }
        return value.asText();
    }

    public boolean has(String key) {
        return node.has(key);
    }

    public CheckpointJson object(String key) throws CorruptCheckpointException {
        JsonNode value = required(key);
        if (!(value instanceof ObjectNode object)) {
            throw wrong(key, "an object", value);
        }
        return new CheckpointJson(file, where + key + ".", object);
    }

    /** The objects of an array, each named by its index in messages. */
    public List<CheckpointJson> objects(String key) throws CorruptCheckpointException {
        JsonNode value = required(key);
        if (!value.isArray()) {
            throw wrong(key, "an array", value);
        }
        List<CheckpointJson> objects = new ArrayList<>();
        for (int i = 0; i < value.size(); i++) {
            if (!(value.get(i) instanceof ObjectNode object)) {
                throw wrong(key + "[" + i + "]", "an object", value.get(i));
            }
            objects.add(new CheckpointJson(file, where + key + "[" + i + "].", object));
        }
        return objects;
    }

    /** This object's keys with their objects, in file order. */
    public List<Map.Entry<String, CheckpointJson>> entries() throws CorruptCheckpointException {
        List<Map.Entry<String, CheckpointJson>> entries = new ArrayList<>();
        for (Map.Entry<String, JsonNode> property : node.properties()) {
            entries.add(Map.entry(property.getKey(), object(property.getKey())));
        }
        return entries;
    }

    /** The value of {@code key} as a record; {@code what} names it in the message, e.g. "a data position". */
    public <T> T value(String key, Class<T> type, String what) throws CorruptCheckpointException {
        JsonNode value = required(key);
        try {
            return JSON.treeToValue(value, type);
        } catch (JsonProcessingException e) {
            throw new CorruptCheckpointException("checkpoint file " + file + ": " + where + key + " is not " + what + " ("
                    + e.getOriginalMessage().lines().findFirst().orElse("") + ")");
        } catch (IllegalArgumentException e) {
            throw new CorruptCheckpointException("checkpoint file " + file + ": " + where + key + " is not " + what + " ("
                    + e.getMessage() + ")");
        }
    }

    private JsonNode required(String key) throws CorruptCheckpointException {
        JsonNode value = node.get(key);
        if (value == null || value.isNull()) {
            throw new CorruptCheckpointException("checkpoint file " + file + ": " + where + key + " is missing");
        }
        return value;
    }

    private CorruptCheckpointException wrong(String key, String expected, JsonNode value) {
        String shown = value.toString();
        if (shown.length() > SHOWN_VALUE_CHARS) {
            shown = shown.substring(0, SHOWN_VALUE_CHARS) + "...";
        }
        return new CorruptCheckpointException("checkpoint file " + file + ": " + where + key + " is not " + expected
                + " (got " + shown + ")");
    }
}
