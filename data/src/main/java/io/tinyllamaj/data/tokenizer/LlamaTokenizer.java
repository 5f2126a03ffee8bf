package io.tinyllamaj.data.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The Llama (SentencePiece BPE) tokenizer in pure Java, matching SentencePiece's encoding of
 * Llama 2: spaces become {@code ▁}, a {@code ▁} is prepended (the dummy prefix), characters are
 * merged pairwise by rule priority, and characters outside the vocabulary fall back to
 * {@code <0xNN>} pieces of their UTF-8 bytes. Text is only text: a literal {@code "<s>"} is
 * three characters, never the BOS token.
 *
 * <p>Speed comes from splitting the text into word chunks that no merge can cross (a chunk
 * starts at each {@code ▁} that follows a non-{@code ▁}, valid when no piece holds a
 * {@code ▁} after another character, checked at load), from merging each chunk with
 * {@link MergeRun} over int arrays, and from looking merges up in a primitive hash map keyed by
 * packed id pairs. Nothing is cached between calls; instances are immutable and thread-safe.
 */
public final class LlamaTokenizer {

    private static final String BUILT_IN = "llama2-tokenizer.json.gz";
    private static final char SPACE_SYMBOL = '\u2581';
    /** The shape of every Llama piece; a vocabulary of only such pieces can be chunked at spaces. */
    private static final Pattern SPACES_THEN_WORD = Pattern.compile("\u2581*[^\u2581]*");
    /** What SentencePiece prints for the unknown piece. */
    private static final byte[] UNKNOWN_SURFACE = " \u2047 ".getBytes(StandardCharsets.UTF_8);

    private final String[] pieces;
    private final PieceKind[] kinds;
    private final int unkId;
    private final int bosId;
    private final int eosId;
    private final boolean addDummyPrefix;
    private final boolean removeExtraWhitespaces;
    private final boolean chunkAtSpaces;
    /** Piece id of each BMP character, -1 where the character is no piece. */
    private final int[] bmpCharIds = new int[0x10000];
    private final LongIntMap supplementaryCharIds;
    private final int[] byteIds = new int[256];
    private final LongIntMap mergeIndex;
    private final int[] mergeRank;
    private final int[] mergeResult;
    /** What each piece decodes to: UTF-8 with {@code ▁} as space, or the raw byte of a byte piece. */
    private final byte[][] surfaces;
    private final String checksum;

    private LlamaTokenizer(TokenizerSpec spec) {
        int vocabSize = spec.pieces().size();
        pieces = spec.pieces().toArray(String[]::new);
        kinds = spec.kinds().toArray(PieceKind[]::new);
        unkId = spec.unkId();
        bosId = spec.bosId();
        eosId = spec.eosId();
        addDummyPrefix = spec.addDummyPrefix();
        removeExtraWhitespaces = spec.removeExtraWhitespaces();

        Arrays.fill(bmpCharIds, -1);
        Arrays.fill(byteIds, unkId);
        supplementaryCharIds = new LongIntMap(64);
        surfaces = new byte[vocabSize][];
        boolean spaceInsideAPiece = false;
        for (int id = 0; id < vocabSize; id++) {
            String piece = pieces[id];
            switch (kinds[id]) {
                case NORMAL -> {
                    if (piece.codePointCount(0, piece.length()) == 1) {
                        int c = piece.codePointAt(0);
                        if (c < 0x10000) {
                            bmpCharIds[c] = id;
                        } else {
                            supplementaryCharIds.putIfAbsent(c, id);
                        }
                    }
                    spaceInsideAPiece |= !SPACES_THEN_WORD.matcher(piece).matches();
                    surfaces[id] = piece.replace(SPACE_SYMBOL, ' ').getBytes(StandardCharsets.UTF_8);
                }
                case BYTE -> {
                    int value = ByteFallback.valueOf(piece);
                    byteIds[value] = id;
                    surfaces[id] = new byte[] {(byte) value};
                }
                case UNKNOWN -> surfaces[id] = UNKNOWN_SURFACE;
                case CONTROL -> surfaces[id] = new byte[0];
            }
        }
        chunkAtSpaces = !spaceInsideAPiece;

        List<TokenizerSpec.Merge> merges = spec.merges();
        mergeIndex = new LongIntMap(merges.size());
        mergeRank = new int[merges.size()];
        mergeResult = new int[merges.size()];
        for (int i = 0; i < merges.size(); i++) {
            TokenizerSpec.Merge merge = merges.get(i);
            // A repeated pair keeps its first (best) rule, as a merges list read top-down would.
            if (mergeIndex.putIfAbsent(LongIntMap.pair(merge.left(), merge.right()), i) == i) {
                mergeRank[i] = merge.rank();
                mergeResult[i] = merge.result();
            }
        }
        checksum = digest(pieces, merges);
    }

    /**
     * Reads a Hugging Face {@code tokenizer.json} or a SentencePiece {@code tokenizer.model},
     * either optionally gzipped; the format is recognised from the content.
     */
    public static LlamaTokenizer load(Path file) throws IOException {
        return new LlamaTokenizer(TokenizerFiles.read(file));
    }

    /** The name every command accepts for the built-in tokenizer. */
    public static final String BUILT_IN_NAME = "llama2";

    /** {@value #BUILT_IN_NAME} for the built-in tokenizer, otherwise a tokenizer file to {@link #load}. */
    public static LlamaTokenizer open(String nameOrPath) throws IOException {
        return BUILT_IN_NAME.equals(nameOrPath) ? llama2() : load(Path.of(nameOrPath));
    }

    /** The Llama 2 tokenizer (32000 pieces) shipped on the classpath. */
    public static LlamaTokenizer llama2() {
        try (InputStream in = LlamaTokenizer.class.getResourceAsStream(BUILT_IN)) {
            if (in == null) {
                throw new IllegalStateException("classpath resource " + BUILT_IN
                        + " is missing; run scripts/fetch-tokenizer and rebuild");
            }
            return new LlamaTokenizer(TokenizerFiles.read(in, "classpath:" + BUILT_IN));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public int[] encode(String text, boolean bos, boolean eos) {
        IntList out = new IntList();
        if (bos) {
            out.add(bosId);
        }
        if (removeExtraWhitespaces) {
            text = Whitespace.removeExtra(text);
        }
        if (!text.isEmpty()) {
            encodeText(text, out);
        }
        if (eos) {
            out.add(eosId);
        }
        return out.toArray();
    }

    private void encodeText(String text, IntList out) {
        MergeRun run = new MergeRun(mergeIndex, mergeRank, mergeResult);
        boolean previousIsSpace = false;
        if (addDummyPrefix) {
            run.add(symbolOf(SPACE_SYMBOL));
            previousIsSpace = true;
        }
        int length = text.length();
        for (int i = 0; i < length; ) {
            char c = text.charAt(i++);
            int codePoint = c;
            if (Character.isHighSurrogate(c) && i < length && Character.isLowSurrogate(text.charAt(i))) {
                codePoint = Character.toCodePoint(c, text.charAt(i++));
            } else if (Character.isSurrogate(c)) {
                codePoint = 0xFFFD; // a lone surrogate has no UTF-8; encode it as UTF-8 encoders do
            } else if (c == ' ') {
                codePoint = SPACE_SYMBOL;
            }
            boolean isSpace = codePoint == SPACE_SYMBOL;
            if (isSpace && !previousIsSpace && chunkAtSpaces && !run.isEmpty()) {
                flush(run, out);
            }
            previousIsSpace = isSpace;
            run.add(symbolOf(codePoint));
        }
        flush(run, out);
    }

    /** The piece id of a character, or {@code -1 - codePoint} when it is not a piece. */
    private int symbolOf(int codePoint) {
        int id = codePoint < 0x10000 ? bmpCharIds[codePoint] : supplementaryCharIds.get(codePoint);
        return id >= 0 ? id : -1 - codePoint;
    }

    private void flush(MergeRun run, IntList out) {
        run.merge();
        for (int position = 0; position < run.end(); position = run.after(position)) {
            int symbol = run.symbolAt(position);
            if (symbol >= 0) {
                out.add(symbol);
            } else {
                ByteFallback.encode(-1 - symbol, byteIds, out);
            }
        }
        run.clear();
    }

    /**
     * The text of {@code ids}: byte pieces are reassembled into UTF-8, control pieces (BOS, EOS)
     * vanish, and the dummy-prefix space of the first piece is removed, as SentencePiece does.
     */
    public String decode(int[] ids) {
        ByteBuffer bytes = ByteBuffer.allocate(Math.max(16, ids.length * 8));
        boolean first = true;
        for (int id : ids) {
            if (id < 0 || id >= pieces.length) {
                throw new IllegalArgumentException("token id " + id + " is outside the vocabulary (0.." + (pieces.length - 1) + ")");
            }
            byte[] surface = surfaces[id];
            int skip = 0;
            if (first && kinds[id] != PieceKind.CONTROL) {
                first = false;
                skip = addDummyPrefix && kinds[id] == PieceKind.NORMAL && surface.length > 0 && surface[0] == ' ' ? 1 : 0;
            }
            if (bytes.remaining() < surface.length) {
                bytes = ByteBuffer.allocate(2 * bytes.capacity() + surface.length).put(bytes.flip());
            }
            bytes.put(surface, skip, surface.length - skip);
        }
        return new String(bytes.array(), 0, bytes.position(), StandardCharsets.UTF_8);
    }

    public int vocabSize() {
        return pieces.length;
    }

    public int bosId() {
        return bosId;
    }

    public int eosId() {
        return eosId;
    }

    /** SHA-256 (hex) of the pieces in id order and the merge rules in rank order (a .model's derived from scores). */
    public String checksum() {
        return checksum;
    }

    private static String digest(String[] pieces, List<TokenizerSpec.Merge> merges) {
        try {
            MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
            for (String piece : pieces) {
                sha256.update(piece.getBytes(StandardCharsets.UTF_8));
                sha256.update((byte) '\n');
            }
            ByteBuffer merge = ByteBuffer.allocate(12);
            for (TokenizerSpec.Merge m : merges) {
                sha256.update(merge.clear().putInt(m.left()).putInt(m.right()).putInt(m.rank()).flip());
            }
            return HexFormat.of().formatHex(sha256.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java platform", e);
        }
    }
}
