package io.tinyllamaj.data.shards;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.luben.zstd.Zstd;
import io.tinyllamaj.data.corpus.CorpusProblemException;
import io.tinyllamaj.data.corpus.CorpusSource;
import io.tinyllamaj.data.corpus.ParquetFixtures;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.junit.jupiter.api.BeforeEach;
import io.tinyllamaj.files.DirectoryLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input, pipeline side: policy on bad input, byte-identical output, safe interruption. */
class PreparePipelineTest {
    @TempDir
    Path dir;
    private Path input;

    @BeforeEach
    void corpus() throws IOException {
        input = dir.resolve("in");
        Files.createDirectories(input);
        for (int file = 0; file < 3; file++) {
            StringBuilder lines = new StringBuilder();
            for (int doc = 0; doc < 300; doc++) {
                String set = doc % 50 == 7 ? "RedPajamaGithub" : "RedPajamaBook";
                lines.append("{\"text\":\"file ").append(file).append(" document ").append(doc)
                        .append(" says hello ").append("x".repeat(doc % 37)).append("\",\"meta\":{\"redpajama_set_name\":\"")
                        .append(set).append("\"}}\n");
                if (doc == 100) {
                    lines.append("{not json\n{\"meta\":{}}\n");
                }
            }
            byte[] compressed = Zstd.compress(lines.toString().getBytes(StandardCharsets.UTF_8), 3);
            Files.write(input.resolve("part-" + file + ".jsonl.zst"), compressed);
        }
    }

    private PrepareResult prepare(Path out, int workers, boolean strict, PrepareProgress progress) throws IOException {
        return prepare(out, workers, strict, progress, 4000);
    }

    private PrepareResult prepare(Path out, int workers, boolean strict, PrepareProgress progress, long shardTokens)
            throws IOException {
        return prepare(CorpusSource.SLIMPAJAMA, input + "/*.jsonl.zst", out, workers, strict, progress, shardTokens);
    }

    private static PrepareResult prepare(CorpusSource source, String glob, Path out, int workers, boolean strict,
                                         PrepareProgress progress, long shardTokens) throws IOException {
        PrepareOptions options = new PrepareOptions(source, List.of(glob), out, workers, strict, shardTokens);
        return new PreparePipeline(options, new ByteEncoder(), progress).run();
    }

    /** Every file in out but the lock, which prepare takes before it decides anything there. */
    private static Map<String, byte[]> contents(Path out) throws IOException {
        Map<String, byte[]> files = new TreeMap<>();
        try (Stream<Path> list = Files.list(out)) {
            for (Path file : list.filter(f -> !f.getFileName().toString().equals(DirectoryLock.FILE)).toList()) {
                files.put(file.getFileName().toString(), Files.readAllBytes(file));
            }
        }
        return files;
    }

    private static void assertSameFiles(Map<String, byte[]> expected, Map<String, byte[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        expected.forEach((name, bytes) -> assertArrayEquals(bytes, actual.get(name), name));
    }

    @Test
    void outputIsByteIdenticalAcrossRunsAndWorkerCounts() throws IOException {
        PrepareResult result = prepare(dir.resolve("one"), 1, false, PrepareProgress.NONE);
        prepare(dir.resolve("three"), 3, false, PrepareProgress.NONE);
        prepare(dir.resolve("again"), 3, false, PrepareProgress.NONE);
        Map<String, byte[]> reference = contents(dir.resolve("one"));
        assertSameFiles(reference, contents(dir.resolve("three")));
        assertSameFiles(reference, contents(dir.resolve("again")));

        ShardManifest manifest = result.manifest();
        assertEquals(3 * (300 - 6), manifest.documents(), "Github lines and bad lines left out");
        assertTrue(manifest.shards().size() > 3, "several shards: " + manifest.shards().size());
        assertEquals(Map.of("RedPajamaGithub", 18L), result.report().excluded());
        assertEquals(6, result.report().problemCount());
        assertTrue(result.report().problems().getFirst().location().endsWith("part-0.jsonl.zst:102"));
    }

    @Test
    void shardsHoldEachDocumentAsItsIdsThenEosWithoutBos() throws IOException {
        Path out = dir.resolve("out");
        prepare(out, 2, false, PrepareProgress.NONE);
        try (TokenSource tokens = TokenSources.open(out.toString(), 259, Verification.FULL)) {
            String first = "file 0 document 0 says hello ";
            int[] expected = new ByteEncoder().encode(first);
            int[] head = new int[expected.length + 2];
            tokens.read(0, head, 0, head.length);
            assertArrayEquals(expected, Arrays.copyOf(head, expected.length));
            assertEquals(2, head[expected.length], "EOS after the document");
            assertEquals(new ByteEncoder().encode("f")[0], head[expected.length + 1], "next document, no BOS");
            int[] last = new int[1];
            tokens.read(tokens.tokenCount() - 1, last, 0, 1);
            assertEquals(2, last[0]);
        }
    }

    @Test
    void strictModeFailsOnTheFirstBadLine() {
        CorpusProblemException error = assertThrows(CorpusProblemException.class,
                () -> prepare(dir.resolve("out"), 2, true, PrepareProgress.NONE));
        assertTrue(error.getMessage().endsWith("part-0.jsonl.zst:102: malformed JSON (Unexpected character ('n' (code 110)): "
                + "was expecting double-quote to start field name)"), error.getMessage());
    }

    /** Stops the run after its second shard, as a kill would, and leaves a torn temporary file. */
    private static final class KillAfterTwoShards implements PrepareProgress {
        int shards;

        @Override
        public void update(long inputBytesDone, long inputBytesTotal, long textBytes, long tokens) {
        }

        @Override
        public void shardCommitted(ShardManifest.Shard shard) {
            if (++shards == 2) {
                throw new IllegalStateException("killed");
            }
        }
    }

    /** {@code dir/out} as a run killed after its second shard leaves it. */
    private Path interruptedRun() throws IOException {
        Path out = dir.resolve("out");
        assertThrows(IllegalStateException.class, () -> prepare(out, 2, false, new KillAfterTwoShards()));
        return out;
    }

    @Test
    void interruptedRunIsNeverReadableAndResumesToTheSameBytes() throws IOException {
        Path reference = dir.resolve("reference");
        prepare(reference, 2, false, PrepareProgress.NONE);

        Path out = interruptedRun();
        byte[] third = Files.readAllBytes(reference.resolve("shard-00002.arrow"));
        Files.write(out.resolve("shard-00002.arrow.tmp"), Arrays.copyOf(third, third.length / 2));

        InvalidShardException unreadable = assertThrows(InvalidShardException.class,
                () -> TokenSources.open(out.toString(), 259, Verification.HEADERS));
        assertTrue(unreadable.getMessage().contains("no manifest.json"), unreadable.getMessage());
        assertThrows(InvalidShardException.class, () -> ArrowTokenShard.open(out.resolve("shard-00002.arrow.tmp"), 259));

        PrepareResult resumed = prepare(out, 3, false, PrepareProgress.NONE);
        assertEquals(2, resumed.shardsReused());
        Map<String, byte[]> expected = contents(reference);
        assertSameFiles(expected, contents(out));

        PrepareResult again = prepare(out, 1, false, PrepareProgress.NONE);
        assertEquals(resumed.manifest(), again.manifest(), "a finished directory is left as it is");
    }

    @Test
    void foreignFilesInTheOutputDirectoryAreRefusedAndLeftByteIdentical() throws IOException {
        Path out = dir.resolve("out");
        Files.createDirectories(out);
        byte[] notes = "my notes, not prepare's".getBytes(StandardCharsets.UTF_8);
        byte[] shard = "another tool's shard".getBytes(StandardCharsets.UTF_8);
        Files.write(out.resolve("notes.tmp"), notes);
        Files.write(out.resolve("shard-00000.arrow"), shard);

        IOException refusal = assertThrows(IOException.class, () -> prepare(out, 2, false, PrepareProgress.NONE));
        assertEquals(out + ": holds files prepare did not write (notes.tmp, shard-00000.arrow); it writes only into a new"
                + " or empty directory or one holding its own run; choose another output directory", refusal.getMessage());
        assertSameFiles(Map.of("notes.tmp", notes, "shard-00000.arrow", shard), contents(out));
    }

    /** A second prepare on a directory in use is refused before it deletes or writes anything there. */
    @Test
    void outputInUseByAnotherPrepareIsRefusedBeforeAnythingChanges() throws IOException {
        Path out = interruptedRun();
        Files.write(out.resolve("shard-00002.arrow.tmp"), new byte[] {1, 2, 3}); // a leftover a free run would delete
        Map<String, byte[]> before = contents(out);
        try (DirectoryLock held = DirectoryLock.acquire(out, "test", "held by the test")) {
            IllegalStateException refusal = assertThrows(IllegalStateException.class,
                    () -> prepare(out, 2, false, PrepareProgress.NONE));
            assertTrue(refusal.getMessage().startsWith("prepare output " + out + " is in use: pid " + ProcessHandle.current().pid()),
                    refusal.getMessage());
            assertTrue(refusal.getMessage().endsWith("(one prepare per output directory: wait for it to end, or choose another --out)"),
                    refusal.getMessage());
        }
        assertSameFiles(before, contents(out));
        assertEquals(2, prepare(out, 2, false, PrepareProgress.NONE).shardsReused(), "free again once the holder is done");
    }

    @Test
    void outputThatIsAFileIsRefused() throws IOException {
        Path out = dir.resolve("out");
        Files.writeString(out, "a file");
        assertEquals(out + ": not a directory",
                assertThrows(IOException.class, () -> prepare(out, 2, false, PrepareProgress.NONE)).getMessage());
        assertEquals("a file", Files.readString(out));
    }

    /** A run with another shard size is refused with {@code message} and leaves every file as it was. */
    private void assertRefusedWithoutChanges(Path out, long shardTokens, String message) throws IOException {
        Map<String, byte[]> before = contents(out);
        IOException refusal = assertThrows(IOException.class,
                () -> prepare(out, 2, false, PrepareProgress.NONE, shardTokens));
        assertEquals(message, refusal.getMessage());
        assertSameFiles(before, contents(out));
    }

    @Test
    void interruptedRunIsRefusedToOtherSettingsBeforeAnythingChanges() throws IOException {
        Path out = interruptedRun();
        Files.write(out.resolve("shard-00002.arrow.tmp"), new byte[] {1, 2, 3});
        Files.write(out.resolve("notes.tmp"), new byte[] {4, 5});
        assertRefusedWithoutChanges(out, 5000, out + ": holds an unfinished preparation of other inputs, tokenizer or"
                + " settings; nothing was changed; delete it or choose another output directory");

        PrepareResult resumed = prepare(out, 2, false, PrepareProgress.NONE);
        assertEquals(2, resumed.shardsReused());
        assertArrayEquals(new byte[] {4, 5}, Files.readAllBytes(out.resolve("notes.tmp")), "a file it did not write");
        assertTrue(Files.notExists(out.resolve("shard-00002.arrow.tmp")), "its own leftover is gone");
    }

    @Test
    void unreadableJournalIsRefusedAndLeftAsItIs() throws IOException {
        Path out = interruptedRun();
        Path journal = out.resolve("prepare-journal.json");
        Files.writeString(journal, "{\"fingerprint\": ");
        Map<String, byte[]> before = contents(out);

        IOException refusal = assertThrows(IOException.class, () -> prepare(out, 2, false, PrepareProgress.NONE));
        assertTrue(refusal.getMessage().startsWith(journal + ": unreadable ("), refusal.getMessage());
        assertTrue(refusal.getMessage().endsWith("); nothing was changed; delete the directory or choose another output"
                + " directory"), refusal.getMessage());
        assertSameFiles(before, contents(out));
    }

    @Test
    void journalEntriesAreKeptOnlyUnderTheNamesPrepareGivesThem() throws IOException {
        Path reference = dir.resolve("reference");
        prepare(reference, 2, false, PrepareProgress.NONE);
        Path out = interruptedRun();
        Path outside = dir.resolve("outside.arrow");
        Files.copy(out.resolve("shard-00000.arrow"), outside);
        Path journal = out.resolve("prepare-journal.json");
        Files.writeString(journal, Files.readString(journal).replace("\"shard-00000.arrow\"", "\"../outside.arrow\""));

        PrepareResult resumed = prepare(out, 2, false, PrepareProgress.NONE);
        assertEquals(0, resumed.shardsReused(), "an entry under another name is not one of its shards");
        assertSameFiles(contents(reference), contents(out));
    }

    @Test
    void finishedDirectoryIsRefusedToOtherSettingsAndLeftAsItIsForTheSame() throws IOException {
        Path out = dir.resolve("out");
        prepare(out, 2, false, PrepareProgress.NONE);
        Map<String, byte[]> before = contents(out);
        assertRefusedWithoutChanges(out, 5000, out + ": holds prepared shards of other inputs, tokenizer or settings;"
                + " nothing was changed; delete it or choose another output directory");

        PrepareResult again = prepare(out, 1, false, PrepareProgress.NONE);
        assertEquals(again.manifest().shards().size(), again.shardsReused());
        assertSameFiles(before, contents(out));
    }

    @Test
    void runWithoutAUsableDocumentFailsAndWritesNothing() throws IOException {
        Path bad = dir.resolve("bad");
        Files.createDirectories(bad);
        Files.writeString(bad.resolve("a.jsonl"), "{\"meta\":{}}\n{\"text\":\"\"}\n");
        Path out = dir.resolve("out");
        IOException error = assertThrows(IOException.class,
                () -> prepare(CorpusSource.JSONL, bad.toString(), out, 2, false, PrepareProgress.NONE, 4000));
        assertEquals("no usable documents in 1 input file (1 unusable records (1 missing text field); excluded: 1 empty"
                + " documents); first: " + bad.resolve("a.jsonl") + ":1: missing text field (no string field \"text\")",
                error.getMessage());
        assertTrue(Files.notExists(out), "no directory, no empty manifest");
    }

    @Test
    void inputsOfAnotherSourceTypeAreRefusedInOneLine() throws IOException {
        Path out = dir.resolve("out");
        IOException zstd = assertThrows(IOException.class,
                () -> prepare(CorpusSource.STARCODER, input.toString(), out, 2, false, PrepareProgress.NONE, 4000));
        assertEquals(input.resolve("part-0.jsonl.zst") + ": zstd-compressed data, but source starcoder reads parquet"
                + " files; use source slimpajama or jsonl", zstd.getMessage());

        Path plain = dir.resolve("plain.jsonl");
        Files.writeString(plain, "{\"text\":\"a document\"}\n");
        IOException jsonl = assertThrows(IOException.class,
                () -> prepare(CorpusSource.STARCODER, plain.toString(), out, 2, false, PrepareProgress.NONE, 4000));
        assertEquals(plain + ": JSON Lines, but source starcoder reads parquet files; use source slimpajama or jsonl",
                jsonl.getMessage());

        Path parquet = dir.resolve("code.parquet");
        ParquetFixtures.write(parquet, List.of(Map.of("content", "def f(): pass\n")), CompressionCodecName.SNAPPY, 1 << 20);
        IOException slim = assertThrows(IOException.class,
                () -> prepare(CorpusSource.SLIMPAJAMA, parquet.toString(), out, 2, false, PrepareProgress.NONE, 4000));
        assertEquals(parquet + ": a parquet file, but source slimpajama reads JSON Lines (.jsonl or .jsonl.zst); use"
                + " source starcoder", slim.getMessage());
        assertTrue(Files.notExists(out));
    }
}
