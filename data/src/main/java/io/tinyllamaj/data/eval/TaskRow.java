package io.tinyllamaj.data.eval;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;

/**
 * One row of a task file, as JSON whatever the file format, with its place ({@code FILE:LINE} for
 * JSON Lines, {@code FILE:row N} for parquet). Every accessor refuses a missing or mistyped field
 * with one line naming the place and the field.
 */
public record TaskRow(String place, JsonNode fields) {

    public String text(String field) {
        JsonNode value = node(field);
        if (!value.isTextual()) {
            throw bad(field, "is not a string (" + value.getNodeType().toString().toLowerCase(java.util.Locale.ROOT) + ")");
        }
        return value.asText();
    }

    /** An integer, or a string of one (HellaSwag's labels are strings). */
    public int integer(String field) {
        JsonNode value = node(field);
        if (value.isIntegralNumber() && value.canConvertToInt()) {
            return value.asInt();
        }
        if (value.isTextual()) {
            try {
                return Integer.parseInt(value.asText().strip());
            } catch (NumberFormatException e) {
                throw bad(field, "is not an integer: '" + value.asText() + "'");
            }
        }
        throw bad(field, "is not an integer");
    }

    public boolean has(String field) {
        JsonNode value = lookup(field);
        return value != null && !value.isNull();
    }

    public boolean bool(String field) {
        JsonNode value = node(field);
        if (!value.isBoolean()) {
            throw bad(field, "is not true or false");
        }
        return value.asBoolean();
    }

    /** A list of strings; a dotted name reaches into a nested object ({@code choices.text}). */
    public List<String> texts(String field) {
        JsonNode value = node(field);
        if (!value.isArray() || value.isEmpty()) {
            throw bad(field, "is not a non-empty list of strings");
        }
        List<String> out = new ArrayList<>();
        for (JsonNode item : value) {
            if (!item.isTextual()) {
                throw bad(field, "holds a value that is not a string");
            }
            out.add(item.asText());
        }
        return out;
    }

    /** A gold index, checked against the number of choices. */
    public int index(String field, int value, int choices) {
        if (value < 0 || value >= choices) {
            throw bad(field, "is " + value + ", out of range for " + choices + " choices");
        }
        return value;
    }

    public IllegalArgumentException bad(String field, String problem) {
        return new IllegalArgumentException(place + ": field '" + field + "' " + problem);
    }

    private JsonNode node(String field) {
        JsonNode value = lookup(field);
        if (value == null || value.isNull()) {
            throw bad(field, "is missing");
        }
        return value;
    }

    private JsonNode lookup(String field) {
        JsonNode value = fields;
        for (String part : field.split("\\.")) {
            value = value == null ? null : value.get(part);
        }
        return value;
    }
}
