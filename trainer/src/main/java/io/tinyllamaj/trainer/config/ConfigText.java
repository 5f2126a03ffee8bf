package io.tinyllamaj.trainer.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * Config text in, YAML tree out, refusing what a tree would take silently or report badly:
 * text past {@link #MAX_LENGTH} (parsing is slow: a 10 MB file takes tens of seconds), bytes
 * that are not UTF-8, a key given twice, {@code .nan} and {@code .inf} (valid YAML, never a
 * valid setting), aliases (the parser hands {@code *name} over as the string {@code name}) and
 * a second document. Problems are {@link IllegalArgumentException}s whose one-line message
 * names the key (relative to the text) and line; callers put the origin in front.
 */
final class ConfigText {

    /** A recipe is a few KB; this is ten times that and more, and parses in about a second on a cold JVM. */
    static final int MAX_LENGTH = 64 * 1024;

    private static final String LIMIT = "a config may be at most " + MAX_LENGTH + " (a recipe is a few KB)";

    // YAML 1.1's non-finite floats; the parser reports them as malformed numbers.
    private static final Pattern NON_FINITE = Pattern.compile("[-+]?\\.(inf|Inf|INF|nan|NaN|NAN)");

    // YAML 1.1's octal integers: 0042 is 34, 010 is 8; a seed or a step count written so would change silently.
    private static final Pattern LEADING_ZERO = Pattern.compile("[-+]?0[0-9_]+");

    // Empty values are YAML's null, as ~ is, so `data:` with nothing takes the section's defaults.
    private static final YAMLFactory YAML = YAMLFactory.builder()
            .enable(YAMLParser.Feature.EMPTY_STRING_AS_NULL)
            .build();

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private final YAMLParser parser;

    private ConfigText(YAMLParser parser) {
        this.parser = parser;
    }

    /** The file's text: its size is checked before it is read, and it must be UTF-8. */
    static String read(Path file) {
        try {
            long size = Files.size(file);
            if (size > MAX_LENGTH) {
                throw new IllegalArgumentException(file + " is " + size + " bytes; " + LIMIT);
            }
            byte[] bytes;
            try (InputStream in = Files.newInputStream(file)) {
                bytes = in.readNBytes(MAX_LENGTH + 1); // bounded: a device or a growing file has no size up front
            }
            if (bytes.length > MAX_LENGTH) {
                throw new IllegalArgumentException(file + " is more than " + MAX_LENGTH + " bytes; " + LIMIT);
            }
            return utf8(file, bytes);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException(file + ": config file not found", e);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read config " + file + ": " + e.getMessage(), e);
        }
    }

    private static String utf8(Path file, byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(in).toString();
        } catch (CharacterCodingException e) {
            // the decoder stops at the start of the malformed sequence
            throw new IllegalArgumentException(String.format("%s: not UTF-8 text (invalid byte 0x%02X at offset %d)",
                    file, bytes[in.position()] & 0xFF, in.position()));
        }
    }

    /** The tree of one YAML document; {@link NullNode} for an empty one. */
    static JsonNode parse(String text) {
        if (text.length() > MAX_LENGTH) {
            throw new IllegalArgumentException(text.length() + " characters; " + LIMIT);
        }
        try (YAMLParser parser = YAML.createParser(text)) {
            if (parser.nextToken() == null) {
                return NullNode.instance;
            }
            ConfigText reader = new ConfigText(parser);
            JsonNode tree = reader.value("");
            if (parser.nextToken() != null) {
                throw new IllegalArgumentException("a second YAML document at line " + reader.line() + "; a config is one document");
            }
            return tree;
        } catch (JacksonException e) {
            throw new IllegalArgumentException("not valid YAML: " + e.getOriginalMessage().replace('\n', ' '));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The value at the current token, which is at {@code key}. */
    private JsonNode value(String key) throws IOException {
        return switch (parser.currentToken()) {
            case START_OBJECT -> object(key);
            case START_ARRAY -> array(key);
            default -> scalar(key);
        };
    }

    private ObjectNode object(String key) throws IOException {
        ObjectNode object = NODES.objectNode();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String name = parser.currentName();
            String child = ConfigLoader.childKey(key, name, false);
            if (object.has(name)) {
                throw new IllegalArgumentException("duplicate key " + child + " (line " + line() + ")");
            }
            parser.nextToken();
            object.set(name, value(child));
        }
        return object;
    }

    private ArrayNode array(String key) throws IOException {
        ArrayNode array = NODES.arrayNode();
        while (parser.nextToken() != JsonToken.END_ARRAY) {
            array.add(value(ConfigLoader.childKey(key, Integer.toString(array.size()), true)));
        }
        return array;
    }

    private JsonNode scalar(String key) throws IOException {
        String text = parser.getText();
        if (parser.isCurrentAlias()) {
            throw problem(key, "*" + text + " is an alias; a config spells every value out");
        }
        if (parser.currentToken() == JsonToken.VALUE_NUMBER_INT && LEADING_ZERO.matcher(text).matches()) {
            throw problem(key, text + " has a leading zero, which YAML 1.1 reads as the octal " + parser.getNumberValue()
                    + "; write the number without it");
        }
        if (parser.currentToken() == JsonToken.VALUE_NUMBER_FLOAT
                && (NON_FINITE.matcher(text).matches() || !Double.isFinite(parser.getDoubleValue()))) {
            throw problem(key, text + " is not a finite number");
        }
        return switch (parser.currentToken()) {
            case VALUE_NULL -> NODES.nullNode();
            case VALUE_TRUE, VALUE_FALSE -> NODES.booleanNode(parser.getBooleanValue());
            case VALUE_NUMBER_INT -> switch (parser.getNumberType()) {
                case INT -> NODES.numberNode(parser.getIntValue());
                case LONG -> NODES.numberNode(parser.getLongValue());
                default -> NODES.numberNode(parser.getBigIntegerValue());
            };
            case VALUE_NUMBER_FLOAT -> NODES.numberNode(parser.getDoubleValue());
            default -> NODES.textNode(text); // strings, and tagged scalars (!!binary) as written
        };
    }

    private IllegalArgumentException problem(String key, String message) {
        return new IllegalArgumentException((key.isEmpty() ? "" : key + ": ") + message + " (line " + line() + ")");
    }

    private int line() {
        return parser.currentTokenLocation().getLineNr();
    }
}
