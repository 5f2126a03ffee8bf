package io.tinyllamaj.data.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Reads a SentencePiece {@code tokenizer.model} (the ModelProto protobuf, parsed by hand) of a
 * BPE model with the identity normalizer, as Llama 2 ships it.
 *
 * <p>SentencePiece's BPE has no merges list: it merges two adjacent symbols whenever their
 * concatenation is a piece, best piece score first, leftmost first among equal scores. We turn
 * that into merge rules: every split of a normal piece into two normal pieces is a rule whose
 * rank is the piece's score order (equal scores, equal ranks), so the same merge loop serves
 * both file formats.
 *
 * <p>Field numbers from sentencepiece_model.proto: ModelProto {pieces = 1, trainer_spec = 2,
 * normalizer_spec = 3}; SentencePiece {piece = 1, score = 2, type = 3}; TrainerSpec
 * {model_type = 3, byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42};
 * NormalizerSpec {name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3,
 * remove_extra_whitespaces = 4, escape_whitespaces = 5}.
 */
final class SentencePieceModel {

    private static final int MODEL_TYPE_BPE = 2;

    private SentencePieceModel() {
    }

    /** One vocabulary entry as the file stores it; {@code type} is SentencePiece's enum (1 normal .. 6 byte). */
    private record Piece(String text, float score, int type) {
    }

    static TokenizerSpec parse(byte[] content, String source) {
        List<Piece> pieces = new ArrayList<>();
        int modelType = 1;
        boolean byteFallback = false;
        int unkId = 0;
        int bosId = 1;
        int eosId = 2;
        boolean addDummyPrefix = true;
        boolean removeExtraWhitespaces = true;
        ProtoReader model = new ProtoReader(content, source);
        while (model.next()) {
            switch (model.field()) {
                case 1 -> pieces.add(readPiece(model.readMessage()));
                case 2 -> {
                    ProtoReader trainer = model.readMessage();
                    while (trainer.next()) {
                        switch (trainer.field()) {
                            case 3 -> modelType = (int) trainer.readVarint();
                            case 35 -> byteFallback = trainer.readVarint() != 0;
                            case 40 -> unkId = (int) trainer.readVarint();
                            case 41 -> bosId = (int) trainer.readVarint();
                            case 42 -> eosId = (int) trainer.readVarint();
                            default -> trainer.skip();
                        }
                    }
                }
                case 3 -> {
                    ProtoReader normalizer = model.readMessage();
                    while (normalizer.next()) {
                        switch (normalizer.field()) {
                            case 1 -> checkNormalizer(normalizer.readString(), source);
                            case 2 -> {
                                if (!normalizer.readString().isEmpty()) {
                                    throw new IllegalArgumentException(source + ": unsupported normalizer (a precompiled character map; only identity is supported)");
                                }
                            }
                            case 3 -> addDummyPrefix = normalizer.readVarint() != 0;
                            case 4 -> removeExtraWhitespaces = normalizer.readVarint() != 0;
                            case 5 -> {
                                if (normalizer.readVarint() == 0) {
                                    throw new IllegalArgumentException(source + ": unsupported normalizer (escape_whitespaces off)");
                                }
                            }
                            default -> normalizer.skip();
                        }
                    }
                }
                default -> model.skip();
            }
        }
        if (pieces.isEmpty()) {
            throw model.malformed("no pieces");
        }
        if (modelType != MODEL_TYPE_BPE) {
            throw new IllegalArgumentException(source + ": SentencePiece model type " + modelType + " is not BPE (2)");
        }
        for (int id : new int[] {unkId, bosId, eosId}) {
            if (id < 0 || id >= pieces.size()) {
                throw new IllegalArgumentException(source + ": special id " + id + " is outside the vocabulary");
            }
        }
        List<PieceKind> kinds = new ArrayList<>(pieces.size());
        for (Piece piece : pieces) {
            kinds.add(kindOf(piece, byteFallback, source));
        }
        return new TokenizerSpec(pieces.stream().map(Piece::text).toList(), kinds, mergesOf(pieces, kinds),
                unkId, bosId, eosId, addDummyPrefix, removeExtraWhitespaces);
    }

    private static Piece readPiece(ProtoReader message) {
        String text = null;
        float score = 0;
        int type = 1;
        while (message.next()) {
            switch (message.field()) {
                case 1 -> text = message.readString();
                case 2 -> score = message.readFloat();
                case 3 -> type = (int) message.readVarint();
                default -> message.skip();
            }
        }
        // SentencePiece refuses empty pieces too; one would have no code point to split at.
        if (text == null || text.isEmpty()) {
            throw message.malformed("a piece without text");
        }
        return new Piece(text, score, type);
    }

    /** Text from the file as one printable line: control characters (a newline, an escape) as Java escapes. */
    private static String printable(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.chars().forEach(c -> out.append(Character.isISOControl(c) ? String.format("\\u%04x", c) : String.valueOf((char) c)));
        return out.toString();
    }

    private static void checkNormalizer(String name, String source) {
        if (!name.equals("identity")) {
            throw new IllegalArgumentException(source + ": unsupported normalizer " + printable(name) + " (only identity, as Llama uses)");
        }
    }

    private static PieceKind kindOf(Piece piece, boolean byteFallback, String source) {
        return switch (piece.type()) {
            // User-defined pieces are treated as normal ones; Llama has none.
            case 1, 4 -> PieceKind.NORMAL;
            case 2 -> PieceKind.UNKNOWN;
            case 3, 5 -> PieceKind.CONTROL;
            case 6 -> {
                if (!byteFallback || !ByteFallback.isBytePiece(piece.text())) {
                    throw new IllegalArgumentException(source + ": byte piece " + printable(piece.text()) + " without byte fallback");
                }
                yield PieceKind.BYTE;
            }
            default -> throw new IllegalArgumentException(source + ": piece " + printable(piece.text()) + " has unknown type " + piece.type());
        };
    }

    /** Every split of a normal piece into two normal pieces, ranked by the piece's score (highest first). */
    private static List<TokenizerSpec.Merge> mergesOf(List<Piece> pieces, List<PieceKind> kinds) {
        Map<String, Integer> normalIds = new HashMap<>();
        TreeSet<Float> scores = new TreeSet<>();
        for (int id = 0; id < pieces.size(); id++) {
            if (kinds.get(id) == PieceKind.NORMAL) {
                normalIds.putIfAbsent(pieces.get(id).text(), id);
                scores.add(pieces.get(id).score());
            }
        }
        Map<Float, Integer> rankOfScore = new HashMap<>();
        for (float score : scores.descendingSet()) {
            rankOfScore.put(score, rankOfScore.size());
        }
        List<TokenizerSpec.Merge> merges = new ArrayList<>();
        for (int id = 0; id < pieces.size(); id++) {
            String text = pieces.get(id).text();
            if (kinds.get(id) != PieceKind.NORMAL) {
                continue;
            }
            int rank = rankOfScore.get(pieces.get(id).score());
            for (int split = text.offsetByCodePoints(0, 1); split < text.length(); split = text.offsetByCodePoints(split, 1)) {
                Integer left = normalIds.get(text.substring(0, split));
                Integer right = normalIds.get(text.substring(split));
                if (left != null && right != null) {
                    merges.add(new TokenizerSpec.Merge(left, right, id, rank));
                }
            }
        }
        merges.sort((a, b) -> a.rank() != b.rank() ? Integer.compare(a.rank(), b.rank()) : Integer.compare(a.result(), b.result()));
        return merges;
    }
}
