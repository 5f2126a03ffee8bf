package io.tinyllamaj.data.corpus;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/** UTF-8 decoding that reports bad bytes instead of replacing them with U+FFFD. */
final class StrictUtf8 {
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);

    /** The decoded text, or null when the bytes are not valid UTF-8. */
    String decode(byte[] bytes, int offset, int length) {
        try {
            return decoder.decode(ByteBuffer.wrap(bytes, offset, length)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    String decode(ByteBuffer bytes) {
        try {
            return decoder.decode(bytes).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
