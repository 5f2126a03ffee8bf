package io.tinyllamaj.data.shards;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.data.sampler.WeightedSource;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.UInt2Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.dictionary.Dictionary;
import org.apache.arrow.vector.dictionary.DictionaryProvider;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.DictionaryEncoding;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every kind of bad shard is refused with one line naming the file. */
class ShardValidationTest {
    private static final int VOCAB = 32000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static int[] tokens(int n, int seed) {
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) {
            tokens[i] = (int) ((i * 2654435761L + seed) % VOCAB);
        }
        return tokens;
    }

    /** Two shards; the first spans two record batches so reads cross a batch boundary. */
    private Path writeDirectory(int vocabOfSecond) throws IOException {
        Path out = dir.resolve("shards");
        Files.createDirectories(out);
        int[] a = tokens(ArrowTokenShard.BATCH_TOKENS + 1000, 1);
        int[] b = tokens(5000, 2);
        List<ShardManifest.Shard> shards = new ArrayList<>();
        shards.add(ArrowTokenShard.write(out.resolve("shard-00000.arrow"), a, a.length, 10, VOCAB));
        shards.add(ArrowTokenShard.write(out.resolve("shard-00001.arrow"), b, b.length, 3, vocabOfSecond));
        new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION, "test", "none", VOCAB, 2, ShardManifest.FRAMING,
                13, a.length + b.length, shards).write(out);
        return out;
    }

    private static String refusal(Path out, Verification verification) {
        return assertThrows(InvalidShardException.class, () -> TokenSources.open(out.toString(), VOCAB, verification))
                .getMessage();
    }

    @Test
    void roundTripReadsAcrossBatchesAndShards() throws IOException {
        Path out = writeDirectory(VOCAB);
        int[] a = tokens(ArrowTokenShard.BATCH_TOKENS + 1000, 1);
        int[] b = tokens(5000, 2);
        try (TokenSource source = TokenSources.open(out.toString(), VOCAB, Verification.FULL)) {
            assertEquals(a.length + b.length, source.tokenCount());
            int[] window = new int[3000];
            int start = a.length - 2000;
            source.read(start, window, 0, window.length);
            int[] expected = new int[3000];
            System.arraycopy(a, start, expected, 0, 2000);
            System.arraycopy(b, 0, expected, 2000, 1000);
            assertArrayEquals(expected, window);
            int[] acrossBatches = new int[10];
            source.read(ArrowTokenShard.BATCH_TOKENS - 5, acrossBatches, 0, 10);
            assertArrayEquals(Arrays.copyOfRange(a, ArrowTokenShard.BATCH_TOKENS - 5, ArrowTokenShard.BATCH_TOKENS + 5),
                    acrossBatches);
        }
    }

    @Test
    void badMagicIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path shard = out.resolve("shard-00001.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[0] = 'X';
        bytes[bytes.length - 1] = 'X';
        Files.write(shard, bytes);
        String message = refusal(out, Verification.HEADERS);
        assertTrue(message.startsWith(shard + ": not an Arrow IPC file"), message);
    }

    @Test
    void wrongVersionIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path shard = out.resolve("shard-00001.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        // The version is the only one-character metadata value: a flatbuffer string "1" (length 1, then '1', NUL),
        // once in the schema at the start and once in the footer.
        String text = new String(bytes, StandardCharsets.ISO_8859_1);
        String version = "\u0001\u0000\u0000\u00001\u0000";
        assertEquals(2, text.split(version, -1).length - 1);
        Files.write(shard, text.replace(version, "\u0001\u0000\u0000\u00007\u0000").getBytes(StandardCharsets.ISO_8859_1));
        assertEquals(shard + ": shard format version 7, this build reads 1", refusal(out, Verification.HEADERS));

        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        Files.writeString(manifest, Files.readString(manifest).replace("\"version\" : 1", "\"version\" : 2"));
        assertEquals(manifest + ": format version 2, this build reads 1", refusal(out, Verification.HEADERS));
    }

    @Test
    void oneByteShortIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path shard = out.resolve("shard-00000.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        Files.write(shard, Arrays.copyOf(bytes, bytes.length - 1));
        assertEquals(shard + ": " + (bytes.length - 1) + " bytes, the manifest says " + bytes.length,
                refusal(out, Verification.HEADERS));
    }

    @Test
    void flippedByteIsRefusedByTheChecksum() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path shard = out.resolve("shard-00000.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length / 2] ^= 1;
        Files.write(shard, bytes);
        assertTrue(refusal(out, Verification.FULL).startsWith(shard + ": SHA-256 "));
    }

    @Test
    void tokenAtOrAboveTheVocabularyIsRefused() throws IOException {
        Path out = dir.resolve("shards");
        Files.createDirectories(out);
        int[] tokens = {5, 6, VOCAB, 7};
        ShardManifest.Shard shard = ArrowTokenShard.write(out.resolve("shard-00000.arrow"), tokens, 4, 1, VOCAB);
        new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION, "test", "none", VOCAB, 2, ShardManifest.FRAMING,
                1, 4, List.of(shard)).write(out);
        assertEquals(out.resolve("shard-00000.arrow") + ": token 32000 at position 2 is outside the vocabulary of 32000",
                refusal(out, Verification.FULL));
    }

    @Test
    void shardsWithDifferentHeadersAreRefused() throws IOException {
        Path out = writeDirectory(VOCAB + 1);
        assertEquals(out.resolve("shard-00001.arrow") + ": header says vocabulary 32001, the manifest says 32000",
                refusal(out, Verification.HEADERS));
    }

    @Test
    void largerVocabularyThanTheModelIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        InvalidShardException error = assertThrows(InvalidShardException.class,
                () -> TokenSources.open(out.toString(), 100, Verification.HEADERS));
        assertTrue(error.getMessage().endsWith("tokenized with a vocabulary of 32000, the model has 100"));
    }

    private static byte[] packedChunk(int code, long chunkSize, short[] tokens) {
        ByteBuffer buffer = ByteBuffer.allocate(24 + tokens.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        buffer.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) code).putLong(chunkSize);
        for (short token : tokens) {
            buffer.putShort(token);
        }
        return buffer.array();
    }

    @Test
    void litGptPackedChunksAreReadAndValidated() throws IOException {
        Path bins = dir.resolve("lit");
        Files.createDirectories(bins);
        Files.write(bins.resolve("train_slim_0.bin"), packedChunk(8, 4, new short[] {1, 2, (short) 31999, 5}));
        Files.write(bins.resolve("train_slim_1.bin"), packedChunk(8, 4, new short[] {7, 8, 9, 10}));
        Files.write(bins.resolve("train_star_0.bin"), packedChunk(8, 2, new short[] {11, 12}));
        try (TokenSource slim = TokenSources.open(bins + "/train_slim*", VOCAB, Verification.FULL)) {
            int[] all = new int[8];
            slim.read(0, all, 0, 8);
            assertArrayEquals(new int[] {1, 2, 31999, 5, 7, 8, 9, 10}, all);
        }
        String differing = assertThrows(InvalidShardException.class,
                () -> TokenSources.open(bins.toString(), VOCAB, Verification.HEADERS)).getMessage();
        assertTrue(differing.startsWith(bins.resolve("train_star_0.bin") + ": header (UINT16, chunk size 2) differs"),
                differing);

        Files.write(bins.resolve("train_slim_1.bin"), packedChunk(8, 5, new short[] {7, 8, 9, 10}));
        assertEquals(bins.resolve("train_slim_1.bin") + ": 32 bytes, the header's chunk size 5 of UINT16 needs 34",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(bins + "/train_slim*", VOCAB, Verification.HEADERS)).getMessage());
        byte[] badMagic = packedChunk(8, 4, new short[] {7, 8, 9, 10});
        badMagic[0] = 'X';
        Files.write(bins.resolve("train_slim_1.bin"), badMagic);
        assertTrue(assertThrows(InvalidShardException.class,
                () -> TokenSources.open(bins + "/train_slim*", VOCAB, Verification.HEADERS)).getMessage()
                .endsWith("train_slim_1.bin: bad magic (expected LITPKDS, a lit-gpt packed dataset chunk)"));
        Files.write(bins.resolve("train_slim_1.bin"), packedChunk(8, 4, new short[] {7, 8, (short) 32000, 10}));
        assertTrue(assertThrows(InvalidShardException.class,
                () -> TokenSources.open(bins + "/train_slim*", VOCAB, Verification.FULL)).getMessage()
                .endsWith("train_slim_1.bin: token 32000 at position 2 is outside the vocabulary of 32000"));
    }

    @Test
    void shardPathThatEscapesTheDirectoryIsRefusedAsSuch() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        String text = Files.readString(manifest);
        Path outside = dir.resolve("outside.arrow");
        Files.copy(out.resolve("shard-00001.arrow"), outside);

        Files.writeString(manifest, text.replace("\"shard-00001.arrow\"", "\"../outside.arrow\""));
        assertEquals(manifest + ": shard path ../outside.arrow escapes the directory", refusal(out, Verification.HEADERS));
        Files.writeString(manifest, text.replace("\"shard-00001.arrow\"", "\"" + outside + "\""));
        assertEquals(manifest + ": shard path " + outside + " escapes the directory", refusal(out, Verification.HEADERS));
    }

    @Test
    void nullsInTheManifestAreRefusedInOneLine() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        String head = "{\"format\":\"tinyllamaj-token-shards\",\"version\":1,\"vocab_size\":32000,\"tokens\":0,";
        Files.writeString(manifest, head + "\"shards\":null}");
        assertEquals(manifest + ": no \"shards\" list", refusal(out, Verification.HEADERS));
        Files.writeString(manifest, head + "\"shards\":[null]}");
        assertEquals(manifest + ": shard 0 is null", refusal(out, Verification.HEADERS));
        Files.writeString(manifest, head + "\"shards\":[{\"file\":null,\"tokens\":0,\"bytes\":0}]}");
        assertEquals(manifest + ": shard 0 has no \"file\"", refusal(out, Verification.HEADERS));
    }

    /** A mixture of one source, read in order: its first block is tokens 0..3. */
    private static String firstBlockRefusal(String sourceName, TokenSource tokens) {
        MixtureSampler sampler = new MixtureSampler(List.of(new WeightedSource(sourceName, tokens, 1)), 3, 1, 0, 1, 0,
                false);
        return assertThrows(UncheckedIOException.class, () -> sampler.nextBlock(new int[4])).getMessage();
    }

    @Test
    void tokenOutsideTheVocabularyIsRefusedWhenReadNamingTheFileAndTheSource() throws IOException {
        Path out = dir.resolve("shards");
        Files.createDirectories(out);
        int[] tokens = {5, 6, VOCAB, 7, 8, 9, 10, 11};
        Path shardFile = out.resolve("shard-00000.arrow");
        ShardManifest.Shard shard = ArrowTokenShard.write(shardFile, tokens, tokens.length, 1, VOCAB);
        new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION, "test", "none", VOCAB, 2, ShardManifest.FRAMING,
                1, tokens.length, List.of(shard)).write(out);
        try (TokenSource source = TokenSources.open(out.toString(), VOCAB, Verification.HEADERS)) {
            assertEquals("data source slimpajama: " + shardFile + ": token 32000 at position 2 is outside the vocabulary"
                    + " of 32000", firstBlockRefusal("slimpajama", source));
        }

        Path bins = dir.resolve("lit");
        Files.createDirectories(bins);
        Path chunk = bins.resolve("train_star_0.bin");
        Files.write(chunk, packedChunk(8, 8, new short[] {1, 2, 3, 4, 5, (short) 40000, 7, 8}));
        try (TokenSource source = TokenSources.open(bins.toString(), VOCAB, Verification.HEADERS)) {
            int[] first = new int[4];
            source.read(0, first, 0, 4);
            assertArrayEquals(new int[] {1, 2, 3, 4}, first, "ids below the vocabulary read as before");
            assertEquals(chunk + ": token 40000 at position 5 is outside the vocabulary of 32000",
                    assertThrows(UncheckedIOException.class, () -> source.read(4, first, 0, 4)).getMessage());
        }
        assertEquals(chunk + ": token 40000 at position 5 is outside the vocabulary of 32000",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(bins.toString(), VOCAB, Verification.FULL)).getMessage());

        Path wide = dir.resolve("train_int64_0.bin");
        ByteBuffer int64 = ByteBuffer.allocate(24 + 2 * 8).order(ByteOrder.LITTLE_ENDIAN);
        int64.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) 5).putLong(2).putLong(9)
                .putLong(1L << 40);
        Files.write(wide, int64.array());
        assertEquals(wide + ": token 1099511627776 at position 1 is outside the vocabulary of 32000",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(wide.toString(), VOCAB, Verification.FULL)).getMessage());
    }

    @Test
    void aShardOrManifestThatCannotBeWrittenIsNamedWithTheSpaceLeftAndLeavesNoTemporary() throws IOException {
        Path out = dir.resolve("shards");
        Path shardFile = out.resolve("shard-00000.arrow");
        Path manifestFile = out.resolve(ShardManifest.FILE_NAME);
        // directories in the way make the final rename fail after the temporary is complete
        Files.createDirectories(shardFile.resolve("in-the-way"));
        Files.createDirectories(manifestFile.resolve("in-the-way"));
        int[] tokens = tokens(100, 1);
        String shardFailure = assertThrows(IOException.class,
                () -> ArrowTokenShard.write(shardFile, tokens, tokens.length, 1, VOCAB)).getMessage();
        assertTrue(shardFailure.startsWith("renaming " + shardFile + ".tmp to " + shardFile + " failed: ")
                && shardFailure.matches(".*; [0-9.]+ (bytes|KiB|MiB|GiB|TiB|PiB|EiB) free on .+"), shardFailure);
        ShardManifest manifest = new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION, "test", "none", VOCAB, 2,
                ShardManifest.FRAMING, 0, 0, List.of());
        String manifestFailure = assertThrows(IOException.class, () -> manifest.write(out)).getMessage();
        assertTrue(manifestFailure.startsWith("renaming " + manifestFile + ".tmp to " + manifestFile + " failed: "),
                manifestFailure);
        try (var left = Files.list(out)) {
            assertEquals(List.of("manifest.json", "shard-00000.arrow"), left.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void arrowMagicAtEitherEndIsChecked() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path shard = out.resolve("shard-00000.arrow");
        byte[] bytes = Files.readAllBytes(shard);
        byte[] start = bytes.clone();
        start[5] = '2'; // ARROW2: Arrow's reader looks at the footer's magic only
        Files.write(shard, start);
        assertEquals(shard + ": not an Arrow IPC file (it does not start with the magic ARROW1)",
                refusal(out, Verification.HEADERS));
        byte[] end = bytes.clone();
        end[end.length - 1] = '2';
        Files.write(shard, end);
        assertEquals(shard + ": not an Arrow IPC file (it does not end with the magic ARROW1)",
                refusal(out, Verification.HEADERS));
    }

    /** Rewrites manifest.json through a JSON tree, as a hostile or careless editor would. */
    private static void editManifest(Path out, Consumer<ObjectNode> edit) throws IOException {
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        ObjectNode tree = (ObjectNode) JSON.readTree(manifest.toFile());
        edit.accept(tree);
        Files.writeString(manifest, tree.toString());
    }

    private static ObjectNode shardEntry(ObjectNode manifest, int index) {
        return (ObjectNode) manifest.get("shards").get(index);
    }

    @Test
    void aShardListedTwiceIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        String original = Files.readString(manifest);
        // a copy of shards[0] appended, and the totals raised to match
        editManifest(out, m -> appendCopyOfFirstShard(m, "shard-00000.arrow"));
        assertEquals(manifest + ": shard 2 lists shard-00000.arrow, the same file as shard 0 (shard-00000.arrow)",
                refusal(out, Verification.FULL));

        Files.writeString(manifest, original);
        editManifest(out, m -> shardEntry(m, 1).put("file", "./shard-00000.arrow"));
        assertEquals(manifest + ": shard 1 lists ./shard-00000.arrow, the same file as shard 0 (shard-00000.arrow)",
                refusal(out, Verification.HEADERS));

        // a link under another name: its entry agrees with the file it points at
        Files.writeString(manifest, original);
        Path link = out.resolve("shard-00002.arrow");
        Files.createSymbolicLink(link, out.resolve("shard-00000.arrow"));
        editManifest(out, m -> appendCopyOfFirstShard(m, "shard-00002.arrow"));
        assertEquals(link + ": is the same file as shard-00000.arrow (a link), listed twice in the manifest",
                refusal(out, Verification.HEADERS));
    }

    /** Shard 0's entry listed again under {@code file}, the totals raised to match: only the duplicate is wrong. */
    private static void appendCopyOfFirstShard(ObjectNode m, String file) {
        ObjectNode copy = shardEntry(m, 0).deepCopy().put("file", file);
        ((ArrayNode) m.get("shards")).add(copy);
        m.put("tokens", m.get("tokens").asLong() + copy.get("tokens").asLong());
        m.put("documents", m.get("documents").asLong() + copy.get("documents").asLong());
    }

    @Test
    void countsFramingAndEosThatTheWriterCannotProduceAreRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        String original = Files.readString(manifest);
        List<Map.Entry<Consumer<ObjectNode>, String>> cases = List.of(
                Map.entry(m -> shardEntry(m, 1).put("documents", -3),
                        "shard 1 (shard-00001.arrow) has a negative count (-3 documents, 5000 tokens, "
                                + sizeOf(out.resolve("shard-00001.arrow")) + " bytes)"),
                Map.entry(m -> m.put("documents", -13), "negative total (-13 documents, "
                        + (ArrowTokenShard.BATCH_TOKENS + 6000) + " tokens)"),
                Map.entry(m -> m.put("documents", 14), "shards hold 13 documents, the total says 14"),
                Map.entry(m -> shardEntry(m, 0).put("documents", Long.MAX_VALUE),
                        "shards hold more than 9223372036854775807 documents, the total says 13"),
                Map.entry(m -> m.put("framing", "ids"), "framing 'ids', this build reads 'ids+eos'"),
                Map.entry(m -> m.remove("framing"), "framing missing, this build reads 'ids+eos'"),
                Map.entry(m -> m.put("eos_id", VOCAB), "eos_id 32000 is outside the vocabulary [0, 32000)"),
                Map.entry(m -> m.put("eos_id", -1), "eos_id -1 is outside the vocabulary [0, 32000)"));
        for (var c : cases) {
            Files.writeString(manifest, original);
            editManifest(out, c.getKey());
            assertEquals(manifest + ": " + c.getValue(), refusal(out, Verification.HEADERS));
        }
        // without a document total (not written by this build, but harmless) the per-shard counts are not summed
        Files.writeString(manifest, original);
        editManifest(out, m -> m.remove("documents"));
        TokenSources.open(out.toString(), VOCAB, Verification.HEADERS).close();
    }

    private static long sizeOf(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void aManifestThatIsNotAnObjectIsRefused() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        for (String text : new String[] {"null", "[]", "2", "\"x\"", ""}) {
            Files.writeString(manifest, text);
            assertEquals(manifest + ": not a JSON object", refusal(out, Verification.HEADERS), text);
        }
    }

    @Test
    void controlCharactersInAShardNameAreRefusedAndPrintedEscaped() throws IOException {
        Path out = writeDirectory(VOCAB);
        Path manifest = out.resolve(ShardManifest.FILE_NAME);
        String original = Files.readString(manifest);
        editManifest(out, m -> shardEntry(m, 1).put("file", "shard-\u00000.arrow"));
        assertEquals(manifest + ": shard 1 file name \"shard-\\u00000.arrow\" has a control character",
                refusal(out, Verification.HEADERS));
        Files.writeString(manifest, original);
        editManifest(out, m -> shardEntry(m, 1).put("file", "shard-1\n\u001b[2J.arrow"));
        assertEquals(manifest + ": shard 1 file name \"shard-1\\u000a\\u001b[2J.arrow\" has a control character",
                refusal(out, Verification.HEADERS));
    }

    @Test
    void packedChunkSizeThatOverflowsIsRefused() throws IOException {
        // 2^61 + 4000 int64s need 2^64 + 32000 bytes, which wrap to 32000: a file of 24 + 32000 bytes
        // used to pass the size check and fail later without a name.
        Path int64 = dir.resolve("train_int64_0.bin");
        ByteBuffer header = ByteBuffer.allocate(24 + 4000 * 8).order(ByteOrder.LITTLE_ENDIAN);
        header.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) 5).putLong((1L << 61) + 4000);
        Files.write(int64, header.array());
        assertEquals(int64 + ": 32024 bytes, the header's chunk size 2305843009213697952 of INT64 needs more than any file holds",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(int64.toString(), VOCAB, Verification.HEADERS)).getMessage());

        Path int32 = dir.resolve("train_int32_0.bin");
        header = ByteBuffer.allocate(24 + 4000 * 4).order(ByteOrder.LITTLE_ENDIAN);
        header.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) 4).putLong((1L << 62) + 4000);
        Files.write(int32, header.array());
        assertEquals(int32 + ": 16024 bytes, the header's chunk size 4611686018427391904 of INT32 needs more than any file holds",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(int32.toString(), VOCAB, Verification.HEADERS)).getMessage());

        Path unsigned = dir.resolve("train_u64_0.bin");
        header = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        header.put("LITPKDS".getBytes(StandardCharsets.US_ASCII)).putLong(1).put((byte) 8).putLong(-1);
        Files.write(unsigned, header.array());
        assertEquals(unsigned + ": 24 bytes, the header's chunk size 18446744073709551615 of UINT16 needs more than any file holds",
                assertThrows(InvalidShardException.class,
                        () -> TokenSources.open(unsigned.toString(), VOCAB, Verification.HEADERS)).getMessage());
    }

    /**
     * A one-shard directory whose shard Arrow Java writes from {@code field} (our metadata, 3 rows),
     * with a manifest that agrees with it: only the column itself can be refused.
     */
    private Path arrowDirectory(Field field, DictionaryProvider dictionaries, Consumer<UInt2Vector> fill)
            throws IOException {
        Path out = dir.resolve("shards");
        Files.createDirectories(out);
        Path file = out.resolve("shard-00000.arrow");
        Schema schema = new Schema(List.of(field), Map.of(ArrowTokenShard.META_FORMAT, ArrowTokenShard.FORMAT_NAME,
                ArrowTokenShard.META_VERSION, "1", ArrowTokenShard.META_VOCAB, Integer.toString(VOCAB)));
        try (BufferAllocator allocator = new RootAllocator();
             VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
             FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
             ArrowFileWriter writer = new ArrowFileWriter(root, dictionaries, channel)) {
            UInt2Vector tokens = (UInt2Vector) root.getVector(0);
            tokens.allocateNew(3);
            fill.accept(tokens);
            tokens.setValueCount(3);
            root.setRowCount(3);
            writer.start();
            writer.writeBatch();
            writer.end();
        }
        ShardManifest.Shard shard = new ShardManifest.Shard(file.getFileName().toString(), 1, 3, Files.size(file),
                ArrowTokenShard.sha256(file));
        new ShardManifest(ShardManifest.FORMAT, ShardManifest.VERSION, "test", "none", VOCAB, 2, ShardManifest.FRAMING,
                1, 3, List.of(shard)).write(out);
        return out;
    }

    private static final ArrowType.Int UINT16 = new ArrowType.Int(16, false);

    @Test
    void dictionaryEncodedTokensAreRefused() throws IOException {
        try (BufferAllocator allocator = new RootAllocator(); UInt2Vector values = new UInt2Vector("values", allocator)) {
            // the ids are 500, 600, 700; the column holds indices 0, 1, 2 into them
            values.allocateNew(3);
            values.set(0, 500);
            values.set(1, 600);
            values.set(2, 700);
            values.setValueCount(3);
            DictionaryEncoding encoding = new DictionaryEncoding(1, false, UINT16);
            DictionaryProvider.MapDictionaryProvider dictionaries = new DictionaryProvider.MapDictionaryProvider();
            dictionaries.put(new Dictionary(values, encoding));
            Field field = new Field(ArrowTokenShard.COLUMN, new FieldType(false, UINT16, encoding), null);
            Path out = arrowDirectory(field, dictionaries, tokens -> {
                for (int i = 0; i < 3; i++) {
                    tokens.set(i, i);
                }
            });
            assertEquals(out.resolve("shard-00000.arrow") + ": column 'tokens' is dictionary-encoded; a token shard holds"
                    + " the token ids themselves", refusal(out, Verification.FULL));
        }
    }

    @Test
    void nullTokensAreRefusedButANullableColumnWithoutNullsIsRead() throws IOException {
        Field nullable = new Field(ArrowTokenShard.COLUMN, FieldType.nullable(UINT16), null);
        Path out = arrowDirectory(nullable, null, tokens -> {
            tokens.set(0, 5);
            tokens.setNull(1);
            tokens.set(2, 7);
        });
        assertEquals(out.resolve("shard-00000.arrow") + ": record batch 0 has 1 null tokens", refusal(out, Verification.FULL));

        deleteDirectory(out);
        out = arrowDirectory(nullable, null, tokens -> {
            tokens.set(0, 5);
            tokens.set(1, 6);
            tokens.set(2, 7);
        });
        try (TokenSource source = TokenSources.open(out.toString(), VOCAB, Verification.FULL)) {
            int[] read = new int[3];
            source.read(0, read, 0, 3);
            assertArrayEquals(new int[] {5, 6, 7}, read);
        }
    }

    private static void deleteDirectory(Path directory) throws IOException {
        try (var files = Files.list(directory)) {
            for (Path file : files.toList()) {
                Files.delete(file);
            }
        }
        Files.delete(directory);
    }
}
