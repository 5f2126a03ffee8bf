package io.tinyllamaj.data.corpus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.luben.zstd.Zstd;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input, reader side: every malformed record is counted with its place; strict stops at the first. */
class CorpusReadersTest {
    @TempDir
    Path dir;

    private static final String GOOD_1 = "{\"text\":\"first document\",\"meta\":{\"redpajama_set_name\":\"RedPajamaBook\"}}";
    private static final String GITHUB = "{\"text\":\"int main(){}\",\"meta\":{\"redpajama_set_name\":\"RedPajamaGithub\"}}";
    private static final String BAD_JSON = "{\"text\": \"unterminated";
    private static final String NO_TEXT = "{\"meta\":{\"redpajama_set_name\":\"RedPajamaC4\"}}";
    private static final String GOOD_2 = "{\"text\":\"second \\u00e9 document\"}";

    private byte[] jsonlWithInvalidUtf8() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (String line : List.of(GOOD_1, GITHUB, BAD_JSON, NO_TEXT)) {
            out.writeBytes((line + "\n").getBytes(StandardCharsets.UTF_8));
        }
        out.writeBytes("{\"text\":\"bad \u00ff".getBytes(StandardCharsets.ISO_8859_1));
        out.writeBytes("\"}\n".getBytes(StandardCharsets.UTF_8));
        out.writeBytes((GOOD_2 + "\n").getBytes(StandardCharsets.UTF_8));
        return out.toByteArray();
    }

    private static List<String> read(CorpusSource source, Path file, ReadReport report) throws IOException {
        List<String> documents = new ArrayList<>();
        source.reader().read(file, documents::add, report, position -> { });
        return documents;
    }

    @Test
    void jsonlCountsEachBadLineWithItsLineNumberAndKeepsTheRest() throws IOException {
        Path file = dir.resolve("part.jsonl");
        Files.write(file, jsonlWithInvalidUtf8());
        ReadReport report = new ReadReport(false);
        List<String> documents = read(CorpusSource.SLIMPAJAMA, file, report);

        assertEquals(List.of("first document", "second \u00e9 document"), documents);
        assertEquals(Map.of(ProblemKind.MALFORMED_JSON, 1L, ProblemKind.MISSING_TEXT, 1L, ProblemKind.INVALID_UTF8, 1L),
                report.counts());
        assertEquals(List.of(file + ":3", file + ":4", file + ":5"),
                report.problems().stream().map(ReadReport.Problem::location).toList());
        assertEquals(Map.of("RedPajamaGithub", 1L), report.excluded());
        assertTrue(report.summary().startsWith("3 unusable records (1 malformed JSON, 1 missing text field, 1 invalid UTF-8)"),
                report.summary());
    }

    @Test
    void plainJsonlSourceKeepsGithubLines() throws IOException {
        Path file = dir.resolve("part.jsonl");
        Files.writeString(file, GOOD_1 + "\n" + GITHUB + "\n");
        assertEquals(List.of("first document", "int main(){}"), read(CorpusSource.JSONL, file, new ReadReport(false)));
    }

    @Test
    void strictModeStopsAtTheFirstBadLineWithOneLine() throws IOException {
        Path file = dir.resolve("part.jsonl");
        Files.write(file, jsonlWithInvalidUtf8());
        CorpusProblemException error = assertThrows(CorpusProblemException.class,
                () -> read(CorpusSource.SLIMPAJAMA, file, new ReadReport(true)));
        assertTrue(error.getMessage().startsWith(file + ":3: malformed JSON"), error.getMessage());
        assertEquals(1, error.getMessage().lines().count());
    }

    @Test
    void truncatedZstdFrameKeepsTheDocumentsBeforeTheCut() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 20000; i++) {
            text.append("{\"text\":\"document ").append(i).append(" with some words in it\"}\n");
        }
        byte[] whole = Zstd.compress(text.toString().getBytes(StandardCharsets.UTF_8), 3);
        Path file = dir.resolve("part.jsonl.zst");
        Files.write(file, Arrays.copyOf(whole, whole.length - 10));
        ReadReport report = new ReadReport(false);
        List<String> documents = read(CorpusSource.SLIMPAJAMA, file, report);

        assertEquals(Map.of(ProblemKind.DAMAGED_ZSTD, 1L), report.counts());
        assertTrue(documents.size() > 10000 && documents.size() < 20000, "kept " + documents.size());
        assertEquals("document 0 with some words in it", documents.getFirst());
        assertEquals(file + ":" + (documents.size() + 1), report.problems().getFirst().location());

        Files.write(file, whole);
        ReadReport clean = new ReadReport(false);
        assertEquals(20000, read(CorpusSource.SLIMPAJAMA, file, clean).size());
        assertEquals(0, clean.problemCount());
    }

    @Test
    void byteOrderMarkOnTheFirstLineIsAccepted() throws IOException {
        Path file = dir.resolve("bom.jsonl");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        bytes.writeBytes(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
        bytes.writeBytes((GOOD_1 + "\n" + GOOD_2 + "\n").getBytes(StandardCharsets.UTF_8));
        ReadReport report = new ReadReport(false);
        assertEquals(List.of("first document", "second \u00e9 document"), read(CorpusSource.JSONL, file, bytes, report));
        assertEquals(0, report.problemCount(), report.summary());
    }

    private static List<String> read(CorpusSource source, Path file, ByteArrayOutputStream bytes, ReadReport report)
            throws IOException {
        Files.write(file, bytes.toByteArray());
        return read(source, file, report);
    }

    @Test
    void documentLongerThanTheJsonParsersDefaultStringLimitIsRead() throws IOException {
        int length = 21_000_000; // Jackson's default maxStringLength is 20,000,000
        Path file = dir.resolve("long.jsonl");
        Files.writeString(file, "{\"text\":\"" + "a".repeat(length) + "\"}\n" + GOOD_2 + "\n");
        ReadReport report = new ReadReport(false);
        List<String> documents = read(CorpusSource.JSONL, file, report);
        assertEquals(0, report.problemCount(), report.summary());
        assertEquals(2, documents.size());
        assertEquals(length, documents.getFirst().length());
    }

    @Test
    void lineOverTheReadersLimitIsReportedTooLongAndReadingGoesOn() throws IOException {
        Path file = dir.resolve("limit.jsonl");
        String longLine = "{\"text\":\"" + "b".repeat(100) + "\"}"; // 112 bytes
        Files.writeString(file, GOOD_1 + "\n" + longLine + "\n" + GOOD_2 + "\n");
        ReadReport report = new ReadReport(false);
        List<String> documents = new ArrayList<>();
        new JsonlReader(null, 100).read(file, documents::add, report, position -> { });
        assertEquals(List.of("first document", "second \u00e9 document"), documents);
        assertEquals(List.of(file + ":2: too long (more than 100 bytes)"),
                report.problems().stream().map(ReadReport.Problem::line).toList());
    }

    @Test
    void textFileOverTheReadersLimitIsReportedTooLong() throws IOException {
        Path file = dir.resolve("big.txt");
        Files.writeString(file, "c".repeat(101));
        ReadReport report = new ReadReport(false);
        List<String> documents = new ArrayList<>();
        new TextFileReader(100).read(file, documents::add, report, position -> { });
        assertEquals(List.of(), documents);
        assertEquals(List.of(file + ": too long (more than 100 bytes)"),
                report.problems().stream().map(ReadReport.Problem::line).toList());
    }

    @Test
    void randomBytesNamedZstAreReportedAsNotZstd() throws IOException {
        Path file = dir.resolve("random.jsonl.zst");
        byte[] random = new byte[4096];
        new java.util.Random(7).nextBytes(random);
        System.arraycopy("RND!".getBytes(StandardCharsets.US_ASCII), 0, random, 0, 4);
        Files.write(file, random);
        ReadReport report = new ReadReport(false);
        assertEquals(List.of(), read(CorpusSource.SLIMPAJAMA, file, report));
        assertEquals(List.of(file + ": not zstd (bad magic 52 4E 44 21, expected 28 B5 2F FD)"),
                report.problems().stream().map(ReadReport.Problem::line).toList());
    }

    @Test
    void nullTextAndNullRecordsAreCountedNotThrown() throws IOException {
        Path file = dir.resolve("nulls.jsonl");
        Files.writeString(file, "{\"text\":null}\nnull\n{\"text\":\"kept\",\"meta\":null}\n[null]\n");
        ReadReport report = new ReadReport(false);
        assertEquals(List.of("kept"), read(CorpusSource.SLIMPAJAMA, file, report));
        assertEquals(List.of(file + ":1: missing text field (no string field \"text\")",
                        file + ":2: malformed JSON (not a JSON object)", file + ":4: malformed JSON (not a JSON object)"),
                report.problems().stream().map(ReadReport.Problem::line).toList());
    }

    private static List<Map<String, String>> codeRows(int n) {
        List<Map<String, String>> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Map<String, String> row = new LinkedHashMap<>();
            row.put("max_stars_repo_path", "src/file" + i + ".py");
            row.put("content", i == 3 ? null : "def f" + i + "():\n    return " + i + "\n");
            rows.add(row);
        }
        return rows;
    }

    @Test
    void parquetReadsContentColumnWithEveryCodecAndCountsNulls() throws IOException {
        for (CompressionCodecName codec : List.of(CompressionCodecName.UNCOMPRESSED, CompressionCodecName.SNAPPY,
                CompressionCodecName.ZSTD, CompressionCodecName.GZIP)) {
            Path file = dir.resolve("code-" + codec + ".parquet");
            ParquetFixtures.write(file, codeRows(50), codec, 1 << 20);
            ReadReport report = new ReadReport(false);
            List<String> documents = read(CorpusSource.STARCODER, file, report);
            assertEquals(49, documents.size(), codec.name());
            assertEquals("def f0():\n    return 0\n", documents.getFirst());
            assertEquals(List.of(file + ":4"), report.problems().stream().map(ReadReport.Problem::location).toList());
        }
    }

    @Test
    void corruptParquetIsReportedNotThrown() throws IOException {
        Path file = dir.resolve("code.parquet");
        ParquetFixtures.write(file, codeRows(2000), CompressionCodecName.SNAPPY, 4096);
        byte[] bytes = Files.readAllBytes(file);

        Path footerless = dir.resolve("cut.parquet");
        Files.write(footerless, Arrays.copyOf(bytes, bytes.length / 2));
        ReadReport report = new ReadReport(false);
        assertEquals(List.of(), read(CorpusSource.STARCODER, footerless, report));
        assertEquals(Map.of(ProblemKind.CORRUPT_PARQUET, 1L), report.counts());
        assertEquals(footerless.toString(), report.problems().getFirst().location());

        Path garbledPages = dir.resolve("garbled.parquet");
        byte[] garbled = bytes.clone();
        for (int i = bytes.length / 2; i < bytes.length / 2 + 64; i++) {
            garbled[i] ^= (byte) 0x5A;
        }
        Files.write(garbledPages, garbled);
        ReadReport pageReport = new ReadReport(false);
        List<String> kept = read(CorpusSource.STARCODER, garbledPages, pageReport);
        assertEquals(1L, pageReport.counts().get(ProblemKind.CORRUPT_PARQUET));
        assertTrue(kept.size() < 1999, "kept " + kept.size());

        assertThrows(CorpusProblemException.class, () -> read(CorpusSource.STARCODER, footerless, new ReadReport(true)));
    }

    @Test
    void textFilesAreOneDocumentEachAndInvalidUtf8IsReported() throws IOException {
        Path good = dir.resolve("a.txt");
        Path bad = dir.resolve("b.txt");
        Files.writeString(good, "Call me Ishmael.\nSome years ago...\n");
        Files.write(bad, new byte[] {'o', 'k', (byte) 0xC3});
        ReadReport report = new ReadReport(false);
        assertEquals(List.of("Call me Ishmael.\nSome years ago...\n"), read(CorpusSource.TEXT, good, report));
        assertEquals(List.of(), read(CorpusSource.TEXT, bad, report));
        assertEquals(Map.of(ProblemKind.INVALID_UTF8, 1L), report.counts());
    }

    @Test
    void globsExpandToSortedFiles() throws IOException {
        Files.createDirectories(dir.resolve("b"));
        Files.createDirectories(dir.resolve("a"));
        Files.writeString(dir.resolve("b/2.jsonl"), "");
        Files.writeString(dir.resolve("a/1.jsonl"), "");
        Files.writeString(dir.resolve("a/skip.txt"), "");
        assertEquals(List.of(dir.resolve("a/1.jsonl"), dir.resolve("b/2.jsonl")),
                InputFiles.expand(List.of(dir + "/*/*.jsonl")));
        assertThrows(IOException.class, () -> InputFiles.expand(List.of(dir + "/none/*.jsonl")));
    }

    @Test
    void anExistingNameIsItselfAndEachFileIsReadOnce() throws IOException {
        Files.writeString(dir.resolve("a[1].txt"), "the named file");
        Files.writeString(dir.resolve("a1.txt"), "what the glob a[1].txt matches");
        // a name with glob characters that exists is that file, not the pattern's match
        assertEquals(List.of(dir.resolve("a[1].txt")), InputFiles.expand(List.of(dir + "/a[1].txt")));
        // a link beside its target, named twice over: one file, under its first name in path order
        Path link = Files.createSymbolicLink(dir.resolve("b-link.txt"), dir.resolve("a1.txt"));
        assertEquals(List.of(dir.resolve("a1.txt")), InputFiles.expand(List.of(dir.resolve("a1.txt").toString(), link.toString(),
                dir + "/./a1.txt")));
    }

    @Test
    void theOutputFolderInsideAnInputFolderIsNotInput() throws IOException {
        Files.writeString(dir.resolve("doc.txt"), "text");
        Path out = Files.createDirectories(dir.resolve("out"));
        Files.writeString(out.resolve("manifest.json"), "{}"); // a first run's output
        assertEquals(List.of(dir.resolve("doc.txt")), InputFiles.expand(List.of(dir.toString()), out));
        assertEquals(List.of(dir.resolve("doc.txt"), out.resolve("manifest.json")), InputFiles.expand(List.of(dir.toString())));
    }

    @Test
    void loneSurrogateEscapeIsInvalidUtf8NotRepaired() throws IOException {
        Path file = dir.resolve("surrogate.jsonl");
        // "\ud800" alone, "\udc00" alone, then a proper pair (U+1F999) that must be kept
        Files.writeString(file, "{\"text\":\"a \\ud800 b\"}\n{\"text\":\"\\udc00\"}\n{\"text\":\"pair \\ud83e\\udd99\"}\n");
        ReadReport report = new ReadReport(false);
        assertEquals(List.of("pair \uD83E\uDD99"), read(CorpusSource.JSONL, file, report));
        assertEquals(Map.of(ProblemKind.INVALID_UTF8, 2L), report.counts());
        assertEquals(List.of(file + ":1: invalid UTF-8 (lone surrogate \\ud800 from a JSON escape at character 2)",
                file + ":2: invalid UTF-8 (lone surrogate \\udc00 from a JSON escape at character 0)"),
                report.problems().stream().map(ReadReport.Problem::line).toList());
        assertEquals(file + ":1: invalid UTF-8 (lone surrogate \\ud800 from a JSON escape at character 2)",
                assertThrows(CorpusProblemException.class, () -> read(CorpusSource.JSONL, file, new ReadReport(true)))
                        .getMessage());
    }

    @Test
    void invalidGlobIsNamedAsSuch() throws IOException {
        Files.writeString(dir.resolve("a.jsonl"), "");
        String glob = dir + "/[.jsonl";
        assertEquals("--input '" + glob + "' is not a valid glob (Missing ])",
                assertThrows(IOException.class, () -> InputFiles.expand(List.of(glob))).getMessage());
        String nowhere = dir + "/none/[.jsonl";
        assertEquals("--input '" + nowhere + "' is not a valid glob (Missing ])",
                assertThrows(IOException.class, () -> InputFiles.expand(List.of(nowhere))).getMessage());
    }
}
