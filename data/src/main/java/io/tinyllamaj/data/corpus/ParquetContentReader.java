package io.tinyllamaj.data.corpus;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongConsumer;
import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.column.ColumnDescriptor;
import org.apache.parquet.column.ColumnReader;
import org.apache.parquet.column.impl.ColumnReadStoreImpl;
import org.apache.parquet.column.page.PageReadStore;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.simple.convert.GroupRecordConverter;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

/**
 * Parquet files with one document per row in a string column (StarCoderData: {@code content}).
 * Reads only that column, row group by row group, through parquet-java without Hadoop: a
 * {@link LocalInputFile}, a plain configuration and {@link HadoopFreeCodecs}. A file that
 * cannot be opened, or a row group that cannot be decoded, is reported as corrupt; the rows
 * already read from it are kept.
 */
public final class ParquetContentReader implements DocumentReader {
    private final String column;

    public ParquetContentReader(String column) {
        this.column = column;
    }

    @Override
    public void read(Path file, DocumentSink sink, ReadReport report, LongConsumer bytesRead) throws IOException {
        long size = Files.size(file);
        ParquetReadOptions options = new ParquetReadOptions.Builder(new PlainParquetConfiguration())
                .withCodecFactory(new HadoopFreeCodecs())
                .build();
        ParquetFileReader reader;
        MessageType projection;
        try {
            reader = new ParquetFileReader(new LocalInputFile(file), options);
        } catch (IOException | RuntimeException e) {
            report.problem(ProblemKind.CORRUPT_PARQUET, file, 0, ParquetProblems.message(e));
            return;
        }
        try (reader) {
            MessageType schema = reader.getFooter().getFileMetaData().getSchema();
            if (!schema.containsField(column) || !isStringColumn(schema.getType(column))) {
                report.problem(ProblemKind.MISSING_TEXT, file, 0, "no string column \"" + column + "\"");
                return;
            }
            projection = new MessageType(schema.getName(), schema.getType(column));
            reader.setRequestedSchema(projection);
            readRowGroups(file, reader, projection, sink, report);
        }
        bytesRead.accept(size);
    }

    private static boolean isStringColumn(Type type) {
        return type.isPrimitive()
                && type.asPrimitiveType().getPrimitiveTypeName() == PrimitiveType.PrimitiveTypeName.BINARY
                && !type.isRepetition(Type.Repetition.REPEATED);
    }

    private static void readRowGroups(Path file, ParquetFileReader reader, MessageType projection,
                                      DocumentSink sink, ReadReport report) {
        ColumnDescriptor descriptor = projection.getColumns().getFirst();
        String createdBy = reader.getFooter().getFileMetaData().getCreatedBy();
        StrictUtf8 utf8 = new StrictUtf8();
        long row = 0;
        int rowGroup = 0;
        try {
            PageReadStore pages;
            while ((pages = reader.readNextRowGroup()) != null) {
                ColumnReader values = new ColumnReadStoreImpl(pages,
                        new GroupRecordConverter(projection).getRootConverter(), projection, createdBy)
                        .getColumnReader(descriptor);
                for (long i = 0; i < pages.getRowCount(); i++) {
                    row++;
                    if (values.getCurrentDefinitionLevel() < descriptor.getMaxDefinitionLevel()) {
                        report.problem(ProblemKind.MISSING_TEXT, file, row, "null content");
                    } else {
                        String text = utf8.decode(values.getBinary().toByteBuffer());
                        if (text == null) {
                            report.problem(ProblemKind.INVALID_UTF8, file, row, "");
                        } else if (text.isEmpty()) {
                            report.exclude("empty documents");
                        } else {
                            sink.document(text);
                        }
                    }
                    values.consume();
                }
                rowGroup++;
            }
        } catch (CorpusProblemException strictStop) {
            throw strictStop;
        } catch (IOException | RuntimeException e) {
            // parquet-java signals undecodable pages with assorted runtime exceptions
            report.problem(ProblemKind.CORRUPT_PARQUET, file, row + 1, "row group " + rowGroup + ": " + ParquetProblems.message(e));
        }
    }
}
