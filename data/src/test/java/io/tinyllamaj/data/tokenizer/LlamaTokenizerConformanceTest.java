package io.tinyllamaj.data.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Our encoder against llama-tokenizer-js (run once in node over the whole corpus): every id of
 * every text must match. Also decode(encode(x)) == x on the corpus, and a SentencePiece
 * .model built from the same vocabulary must encode the corpus exactly like the JSON.
 */
class LlamaTokenizerConformanceTest {

    private static final int TEXTS = 3000;

    private static List<String> texts;
    private static int[][] reference;
    private static LlamaTokenizer tokenizer;

    @BeforeAll
    static void encodeWithReference(@TempDir Path workDir) throws Exception {
        texts = TestCorpus.texts(TEXTS, 3407);
        reference = ReferenceEncoder.encode(texts, workDir);
        tokenizer = LlamaTokenizer.llama2();
    }

    @Test
    void idsMatchLlamaTokenizerJs() {
        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            // The package returns [] for "", without BOS; SentencePiece and we give [BOS].
            int[] expected = text.isEmpty() ? new int[] {tokenizer.bosId()} : reference[i];
            assertSameIds("text " + i, text, expected, tokenizer.encode(text, true, false));
        }
    }

    @Test
    void decodeInvertsEncode() {
        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            if (text.indexOf('\u2581') >= 0) {
                continue; // "▁" is how spaces are spelled, so it decodes to a space, as in SentencePiece
            }
            String decoded = tokenizer.decode(tokenizer.encode(text, true, true));
            if (!decoded.equals(text)) {
                fail("text " + i + " does not survive encode/decode:\n  text    " + escape(text) + "\n  decoded " + escape(decoded));
            }
        }
    }

    @Test
    void sentencePieceModelEncodesLikeTheJson(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("tokenizer.model");
        Files.write(model, modelFromBuiltInVocabulary());
        LlamaTokenizer fromModel = LlamaTokenizer.load(model);
        assertEquals(tokenizer.vocabSize(), fromModel.vocabSize());
        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            assertSameIds("text " + i + " (.model vs .json)", text, tokenizer.encode(text, true, true), fromModel.encode(text, true, true));
        }
    }

    /**
     * A ModelProto with the built-in vocabulary, each piece scored minus the rank of the first
     * merge that makes it, the way SentencePiece scores pieces by the order they were learned.
     */
    private static byte[] modelFromBuiltInVocabulary() throws Exception {
        JsonNode json;
        try (InputStream in = new GZIPInputStream(LlamaTokenizer.class.getResourceAsStream("llama2-tokenizer.json.gz"))) {
            json = new ObjectMapper().readTree(in);
        }
        String[] pieces = new String[json.at("/model/vocab").size()];
        json.at("/model/vocab").properties().forEach(entry -> pieces[entry.getValue().asInt()] = entry.getKey());
        Map<String, Integer> firstMergeRank = new HashMap<>();
        JsonNode merges = json.at("/model/merges");
        for (int rank = 0; rank < merges.size(); rank++) {
            firstMergeRank.putIfAbsent(merges.get(rank).get(0).asText() + merges.get(rank).get(1).asText(), rank);
        }
        ModelProtoWriter model = new ModelProtoWriter();
        for (int id = 0; id < pieces.length; id++) {
            String piece = pieces[id];
            int type = id == 0 ? 2 : id <= 2 ? 3 : ByteFallback.isBytePiece(piece) ? 6 : 1;
            Integer rank = firstMergeRank.get(piece);
            model.piece(piece, rank == null ? -merges.size() - id : -rank, type);
        }
        model.message(2, new ModelProtoWriter().varint(3, 2).varint(35, 1).varint(40, 0).varint(41, 1).varint(42, 2));
        model.message(3, new ModelProtoWriter().string(1, "identity").varint(3, 1).varint(4, 0).varint(5, 1));
        return model.toByteArray();
    }

    private static void assertSameIds(String what, String text, int[] expected, int[] actual) {
        if (Arrays.equals(expected, actual)) {
            return;
        }
        int at = Arrays.mismatch(expected, actual);
        fail(what + ": first mismatch at id index " + at + "\n  text     " + escape(text)
                + "\n  expected " + around(expected, at) + "\n  actual   " + around(actual, at));
    }

    private static String around(int[] ids, int at) {
        int from = Math.max(0, at - 3);
        return "..." + Arrays.toString(Arrays.copyOfRange(ids, from, Math.min(ids.length, at + 4))) + " (" + ids.length + " ids)";
    }

    private static String escape(String text) {
        StringBuilder out = new StringBuilder("\"");
        text.codePoints().limit(300).forEach(c -> {
            if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) {
                out.append(String.format("\\u%04X", c));
            } else {
                out.appendCodePoint(c);
            }
        });
        return out.append(text.codePointCount(0, text.length()) > 300 ? "...\"" : "\"").toString();
    }
}
