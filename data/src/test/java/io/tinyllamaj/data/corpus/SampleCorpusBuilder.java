package io.tinyllamaj.data.corpus;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.github.luben.zstd.Zstd;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;

/**
 * Rebuilds {@code samples/} (run by {@code scripts/make-samples}): SlimPajama-style
 * {@code .jsonl.zst} from the reStructuredText sources of the Python 3.11 documentation
 * (Debian python3.11-doc) and StarCoderData-style {@code .parquet} from the Python 3.11
 * standard library (Debian libpython3.11-stdlib), both under the PSF licence. Files are taken
 * in sorted order and written with fixed settings, so the output is the same on every run.
 */
public final class SampleCorpusBuilder {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> DOC_SECTIONS = List.of("tutorial", "howto", "faq", "reference", "glossary.rst.txt");
    private static final long CODE_BYTES = 1_300_000;
    private static final int ZSTD_LEVEL = 19;

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            throw new IllegalArgumentException("usage: SampleCorpusBuilder OUT_DIR DOC_SOURCES_DIR STDLIB_DIR");
        }
        Path out = Path.of(args[0]);
        Path docs = Path.of(args[1]);
        Path stdlib = Path.of(args[2]);
        List<Path> codeFiles = codeFiles(stdlib);
        writeSlimPajama(out.resolve("slimpajama"), docs, stdlib, codeFiles.subList(0, 2));
        writeStarCoder(out.resolve("starcoder"), stdlib, codeFiles);
    }

    private static void writeSlimPajama(Path dir, Path docs, Path stdlib, List<Path> githubExamples) throws IOException {
        Files.createDirectories(dir);
        List<String> lines = new ArrayList<>();
        for (String section : DOC_SECTIONS) {
            for (Path file : sorted(docs.resolve(section), ".rst.txt")) {
                lines.add(line(Files.readString(file), "RedPajamaBook", "python3.11-doc:" + docs.relativize(file)));
            }
        }
        // A few code documents labelled RedPajamaGithub: prepare --source slimpajama leaves them out, as TinyLlama did.
        for (Path file : githubExamples) {
            lines.add(2 + lines.size() / 3, line(Files.readString(file), "RedPajamaGithub", "Lib/" + stdlib.relativize(file)));
        }
        int half = lines.size() / 2;
        writeZstdJsonl(dir.resolve("chunk_0000.jsonl.zst"), lines.subList(0, half));
        writeZstdJsonl(dir.resolve("chunk_0001.jsonl.zst"), lines.subList(half, lines.size()));
    }

    private static String line(String text, String set, String origin) throws IOException {
        Map<String, Object> meta = new LinkedHashMap<>();
        meta.put("redpajama_set_name", set);
        meta.put("origin", origin);
        Map<String, Object> record = new LinkedHashMap<>();
        record.put("text", text);
        record.put("meta", meta);
        return JSON.writeValueAsString(record);
    }

    private static void writeZstdJsonl(Path file, List<String> lines) throws IOException {
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (String line : lines) {
            text.writeBytes((line + "\n").getBytes(StandardCharsets.UTF_8));
        }
        Files.write(file, Zstd.compress(text.toByteArray(), ZSTD_LEVEL));
    }

    private static List<Path> codeFiles(Path stdlib) throws IOException {
        List<Path> chosen = new ArrayList<>();
        long bytes = 0;
        for (Path file : sorted(stdlib, ".py")) {
            if (file.getParent().equals(stdlib) && bytes < CODE_BYTES && Files.size(file) < 120_000) {
                chosen.add(file);
                bytes += Files.size(file);
            }
        }
        return chosen;
    }

    private static void writeStarCoder(Path dir, Path stdlib, List<Path> files) throws IOException {
        Files.createDirectories(dir);
        List<Map<String, String>> rows = new ArrayList<>();
        for (Path file : files) {
            Map<String, String> row = new LinkedHashMap<>();
            row.put("max_stars_repo_path", "Lib/" + stdlib.relativize(file));
            row.put("max_stars_repo_name", "python/cpython");
            row.put("content", Files.readString(file));
            rows.add(row);
        }
        int half = rows.size() / 2;
        ParquetFixtures.write(dir.resolve("train-00000-of-00002.parquet"), rows.subList(0, half),
                CompressionCodecName.SNAPPY, 1 << 20);
        ParquetFixtures.write(dir.resolve("train-00001-of-00002.parquet"), rows.subList(half, rows.size()),
                CompressionCodecName.SNAPPY, 1 << 20);
    }

    private static List<Path> sorted(Path root, String suffix) throws IOException {
        if (Files.isRegularFile(root)) {
            return List.of(root);
        }
        try (Stream<Path> walk = Files.walk(root)) {
            return walk.filter(f -> Files.isRegularFile(f) && f.getFileName().toString().endsWith(suffix)).sorted().toList();
        }
    }
}
