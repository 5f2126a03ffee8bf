package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.io.LocalOutputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.MessageTypeParser;

/** Writes StarCoderData-shaped parquet files (string columns) without Hadoop, for tests and samples. */
public final class ParquetFixtures {
    private ParquetFixtures() {
    }

    /** Every row must have the same keys, in the same order; each key becomes an optional string column. */
    public static void write(Path file, List<Map<String, String>> rows, CompressionCodecName codec, int rowGroupBytes)
            throws IOException {
        StringBuilder schemaText = new StringBuilder("message document {");
        for (String column : rows.getFirst().keySet()) {
            schemaText.append(" optional binary ").append(column).append(" (STRING);");
        }
        MessageType schema = MessageTypeParser.parseMessageType(schemaText.append(" }").toString());
        Files.deleteIfExists(file);
        SimpleGroupFactory groups = new SimpleGroupFactory(schema);
        try (ParquetWriter<Group> writer = ExampleParquetWriter.builder(new LocalOutputFile(file))
                .withConf(new PlainParquetConfiguration())
                .withCodecFactory(new HadoopFreeCodecs())
                .withCompressionCodec(codec)
                .withRowGroupSize(rowGroupBytes)
                .withType(schema)
                .build()) {
            for (Map<String, String> row : rows) {
                Group group = groups.newGroup();
                row.forEach((column, value) -> {
                    if (value != null) {
                        group.append(column, value);
                    }
                });
                writer.write(group);
            }
        }
    }
}
