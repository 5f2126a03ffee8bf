package io.tinyllamaj.data.tokenizer;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a Hugging Face {@code tokenizer.json} of the Llama kind: a BPE model with merges and
 * byte fallback, a normalizer that prepends {@code ▁} and replaces spaces by {@code ▁} (or the
 * newer equivalent, a non-splitting Metaspace pre-tokenizer), and {@code <s>}, {@code </s>}.
 * Merge ranks are the merges' positions in the file. Added tokens are control pieces that
 * are never matched in text, as in SentencePiece.
 */
final class HuggingFaceTokenizerJson {

    private static final String SPACE_SYMBOL = "\u2581";

    private HuggingFaceTokenizerJson() {
    }

    static TokenizerSpec parse(byte[] content, String source) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(content);
        } catch (JacksonException e) {
            throw new IOException(source + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        JsonNode model = root.path("model");
        if (!model.isObject() || !"BPE".equals(model.path("type").asText("BPE")) || !model.path("vocab").isObject()) {
            throw new IllegalArgumentException(source + ": not a BPE tokenizer.json (needs \"model\": {\"type\": \"BPE\", \"vocab\": {...}})");
        }
        Map<String, Integer> ids = new HashMap<>();
        model.get("vocab").properties().forEach(entry -> ids.put(entry.getKey(), entry.getValue().asInt(-1)));
        for (JsonNode added : root.path("added_tokens")) {
            ids.putIfAbsent(added.path("content").asText(), added.path("id").asInt(-1));
        }
        String[] pieces = new String[ids.size()];
        ids.forEach((piece, id) -> {
            if (id < 0 || id >= pieces.length || pieces[id] != null) {
                throw new IllegalArgumentException(source + ": vocabulary ids are not 0.." + (pieces.length - 1)
                        + " each used once (piece " + piece + " has id " + id + ")");
            }
            pieces[id] = piece;
        });

        PieceKind[] kinds = new PieceKind[pieces.length];
        boolean byteFallback = model.path("byte_fallback").asBoolean(false);
        for (int id = 0; id < pieces.length; id++) {
            kinds[id] = byteFallback && ByteFallback.isBytePiece(pieces[id]) ? PieceKind.BYTE : PieceKind.NORMAL;
        }
        for (JsonNode added : root.path("added_tokens")) {
            if (added.path("special").asBoolean(false)) {
                kinds[ids.get(added.path("content").asText())] = PieceKind.CONTROL;
            }
        }
        int unkId = idOf(ids, model.path("unk_token").asText("<unk>"), source);
        kinds[unkId] = PieceKind.UNKNOWN;

        return new TokenizerSpec(Arrays.asList(pieces), Arrays.asList(kinds), merges(model.path("merges"), ids, source),
                unkId, idOf(ids, "<s>", source), idOf(ids, "</s>", source), addsDummyPrefix(root, source), false);
    }

    private static List<TokenizerSpec.Merge> merges(JsonNode merges, Map<String, Integer> ids, String source) {
        if (!merges.isArray()) {
            throw new IllegalArgumentException(source + ": model.merges is missing or not a list");
        }
        List<TokenizerSpec.Merge> out = new ArrayList<>(merges.size());
        for (JsonNode merge : merges) {
            String left;
            String right;
            if (merge.isArray() && merge.size() == 2) {
                left = merge.get(0).asText();
                right = merge.get(1).asText();
            } else {
                String[] parts = merge.asText().split(" ", -1);
                if (parts.length != 2) {
                    throw new IllegalArgumentException(source + ": merge " + merge + " is not \"left right\"");
                }
                left = parts[0];
                right = parts[1];
            }
            int rank = out.size();
            out.add(new TokenizerSpec.Merge(idOf(ids, left, source), idOf(ids, right, source), idOf(ids, left + right, source), rank));
        }
        return out;
    }

    private static int idOf(Map<String, Integer> ids, String piece, String source) {
        Integer id = ids.get(piece);
        if (id == null) {
            throw new IllegalArgumentException(source + ": piece \"" + piece + "\" is not in the vocabulary");
        }
        return id;
    }

    /**
     * Whether text gets a leading {@code ▁}. Accepts the two ways Hugging Face writes Llama's
     * SentencePiece normalisation and rejects anything else rather than encode differently.
     */
    private static boolean addsDummyPrefix(JsonNode root, String source) {
        boolean prepends = false;
        boolean replacesSpaces = false;
        JsonNode normalizer = root.path("normalizer");
        JsonNode steps = "Sequence".equals(normalizer.path("type").asText()) ? normalizer.path("normalizers") : normalizer;
        for (JsonNode step : steps.isArray() ? steps : List.of(steps)) {
            switch (step.path("type").asText("")) {
                case "Prepend" -> prepends = SPACE_SYMBOL.equals(step.path("prepend").asText());
                case "Replace" -> replacesSpaces = " ".equals(step.path("pattern").path("String").asText())
                        && SPACE_SYMBOL.equals(step.path("content").asText());
                case "" -> { }
                default -> throw new IllegalArgumentException(source + ": unsupported normalizer " + step.path("type").asText());
            }
        }
        JsonNode preTokenizer = root.path("pre_tokenizer");
        if ("Metaspace".equals(preTokenizer.path("type").asText())) {
            if (preTokenizer.path("split").asBoolean(true) || !SPACE_SYMBOL.equals(preTokenizer.path("replacement").asText())) {
                throw new IllegalArgumentException(source + ": unsupported Metaspace pre-tokenizer (needs replacement ▁ and split false)");
            }
            replacesSpaces = true;
            prepends = !"never".equals(preTokenizer.path("prepend_scheme").asText("always"))
                    && preTokenizer.path("add_prefix_space").asBoolean(true);
        } else if (!preTokenizer.isMissingNode() && !preTokenizer.isNull()) {
            throw new IllegalArgumentException(source + ": unsupported pre_tokenizer " + preTokenizer.path("type").asText());
        }
        if (!replacesSpaces) {
            throw new IllegalArgumentException(source + ": the normalizer does not replace spaces by ▁, so this is not a Llama-style tokenizer");
        }
        return prepends;
    }
}
