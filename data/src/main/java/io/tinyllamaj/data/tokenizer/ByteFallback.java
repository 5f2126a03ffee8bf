package io.tinyllamaj.data.tokenizer;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The {@code <0xNN>} byte pieces that stand for the UTF-8 bytes of characters outside the vocabulary. */
final class ByteFallback {

    private static final Pattern BYTE_PIECE = Pattern.compile("<0x([0-9A-Fa-f]{2})>");

    private ByteFallback() {
    }

    static boolean isBytePiece(String piece) {
        return BYTE_PIECE.matcher(piece).matches();
    }

    static int valueOf(String bytePiece) {
        Matcher matcher = BYTE_PIECE.matcher(bytePiece);
        if (!matcher.matches()) {
            throw new IllegalArgumentException("not a byte piece: " + bytePiece);
        }
        return Integer.parseInt(matcher.group(1), 16);
    }

    /** Appends the byte piece ids of {@code codePoint}'s UTF-8 encoding ({@code byteIds} maps byte to id). */
    static void encode(int codePoint, int[] byteIds, IntList out) {
        if (codePoint < 0x80) {
            out.add(byteIds[codePoint]);
        } else if (codePoint < 0x800) {
            out.add(byteIds[0xC0 | codePoint >> 6]);
            out.add(byteIds[0x80 | codePoint & 0x3F]);
        } else if (codePoint < 0x10000) {
            out.add(byteIds[0xE0 | codePoint >> 12]);
            out.add(byteIds[0x80 | codePoint >> 6 & 0x3F]);
            out.add(byteIds[0x80 | codePoint & 0x3F]);
        } else {
            out.add(byteIds[0xF0 | codePoint >> 18]);
            out.add(byteIds[0x80 | codePoint >> 12 & 0x3F]);
            out.add(byteIds[0x80 | codePoint >> 6 & 0x3F]);
            out.add(byteIds[0x80 | codePoint & 0x3F]);
        }
    }
}
