package io.tinyllamaj.data.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.data.corpus.HadoopFreeCodecs;
import io.tinyllamaj.data.corpus.ParquetProblems;
import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.column.page.PageReadStore;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.convert.GroupRecordConverter;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.io.ColumnIOFactory;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.io.RecordReader;
import org.apache.parquet.schema.GroupType;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Parquet task files (as Hugging Face converts datasets: pyarrow's schema, lists as 3-level
 * LIST groups, structs as groups) read row by row into the JSON the JSON Lines files hold, so
 * one set of field checks serves both formats.
 */
final class ParquetRows {

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private ParquetRows() {
    }

    static List<TaskRow> read(Path file, int limit) throws IOException {
        ParquetReadOptions options = new ParquetReadOptions.Builder(new PlainParquetConfiguration())
                .withCodecFactory(new HadoopFreeCodecs()).build();
        List<TaskRow> rows = new ArrayList<>();
        long row = 0;
        try (ParquetFileReader reader = new ParquetFileReader(new LocalInputFile(file), options)) {
            MessageType schema = reader.getFooter().getFileMetaData().getSchema();
            PageReadStore pages;
            while ((limit < 0 || rows.size() < limit) && (pages = reader.readNextRowGroup()) != null) {
                RecordReader<Group> records = new ColumnIOFactory().getColumnIO(schema)
                        .getRecordReader(pages, new GroupRecordConverter(schema));
                for (long i = 0; i < pages.getRowCount() && (limit < 0 || rows.size() < limit); i++) {
                    row++;
                    rows.add(new TaskRow(file + ":row " + row, object(records.read())));
                }
            }
        } catch (IOException | RuntimeException e) {
            // parquet-java reports damaged files with assorted exceptions; the place is what helps
            throw new IllegalArgumentException(file + ":row " + (row + 1) + ": unreadable parquet: " + ParquetProblems.message(e));
        }
        if (rows.isEmpty()) {
            throw new IllegalArgumentException(file + ": no items");
        }
        return rows;
    }

    private static ObjectNode object(Group group) {
        ObjectNode out = NODES.objectNode();
        GroupType type = group.getType();
        for (int f = 0; f < type.getFieldCount(); f++) {
            Type field = type.getType(f);
            int count = group.getFieldRepetitionCount(f);
            if (field.isRepetition(Type.Repetition.REPEATED)) { // a legacy 2-level list
                ArrayNode array = out.putArray(field.getName());
                for (int i = 0; i < count; i++) {
                    array.add(value(group, f, i, field));
                }
            } else {
                out.set(field.getName(), count == 0 ? NODES.nullNode() : value(group, f, 0, field));
            }
        }
        return out;
    }

    private static JsonNode value(Group group, int field, int index, Type type) {
        if (!type.isPrimitive()) {
            Group child = group.getGroup(field, index);
            return type.getLogicalTypeAnnotation() instanceof LogicalTypeAnnotation.ListLogicalTypeAnnotation
                    ? list(child) : object(child);
        }
        PrimitiveType primitive = type.asPrimitiveType();
        return switch (primitive.getPrimitiveTypeName()) {
            case BINARY, FIXED_LEN_BYTE_ARRAY -> NODES.textNode(new String(group.getBinary(field, index).getBytes(), StandardCharsets.UTF_8));
            case INT32 -> NODES.numberNode(group.getInteger(field, index));
            case INT64 -> NODES.numberNode(group.getLong(field, index));
            case BOOLEAN -> NODES.booleanNode(group.getBoolean(field, index));
            case FLOAT -> NODES.numberNode(group.getFloat(field, index));
            case DOUBLE -> NODES.numberNode(group.getDouble(field, index));
            case INT96 -> NODES.nullNode();
        };
    }

    /** A LIST group: one repeated child (the {@code list} group holding {@code element}, or the element itself). */
    private static ArrayNode list(Group listGroup) {
        ArrayNode array = NODES.arrayNode();
        Type repeated = listGroup.getType().getType(0);
        for (int i = 0; i < listGroup.getFieldRepetitionCount(0); i++) {
            if (!repeated.isPrimitive() && repeated.asGroupType().getFieldCount() == 1) {
                Group entry = listGroup.getGroup(0, i);
                Type element = repeated.asGroupType().getType(0);
                array.add(entry.getFieldRepetitionCount(0) == 0 ? NODES.nullNode() : value(entry, 0, 0, element));
            } else {
                array.add(value(listGroup, 0, i, repeated));
            }
        }
        return array;
    }
}
