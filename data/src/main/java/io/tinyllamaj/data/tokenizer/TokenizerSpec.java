package io.tinyllamaj.data.tokenizer;

import java.util.List;

/**
 * Everything a tokenizer file says that encoding and decoding need, independent of its format.
 * Both readers ({@link HuggingFaceTokenizerJson}, {@link SentencePieceModel}) produce one.
 *
 * @param pieces         the vocabulary, indexed by id
 * @param kinds          the kind of each piece
 * @param merges         the merge rules; lower rank merges first, equal ranks leftmost first
 * @param addDummyPrefix whether a space is prepended to non-empty text (SentencePiece's dummy prefix)
 * @param removeExtraWhitespaces whether leading, trailing and repeated spaces are dropped first
 */
record TokenizerSpec(List<String> pieces, List<PieceKind> kinds, List<Merge> merges,
                     int unkId, int bosId, int eosId, boolean addDummyPrefix, boolean removeExtraWhitespaces) {

    /** Adjacent pieces {@code left}, {@code right} become {@code result}. */
    record Merge(int left, int right, int result, int rank) {
    }
}
