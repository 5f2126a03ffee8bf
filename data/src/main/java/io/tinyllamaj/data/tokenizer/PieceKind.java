package io.tinyllamaj.data.tokenizer;

/**
 * What a vocabulary entry stands for, as SentencePiece's {@code ModelProto.SentencePiece.Type}
 * distinguishes them: only normal pieces take part in merges, control pieces (BOS, EOS) never
 * come out of text and decode to nothing, byte pieces carry one raw UTF-8 byte.
 */
enum PieceKind {
    NORMAL, UNKNOWN, CONTROL, BYTE
}
