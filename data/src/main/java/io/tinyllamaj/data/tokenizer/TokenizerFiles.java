package io.tinyllamaj.data.tokenizer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/**
 * Opens a tokenizer file: gunzips it when it starts with the gzip magic, then hands it to the
 * JSON reader when it starts with '{' and to the protobuf reader otherwise, so file names
 * (.json, .json.gz, .model) do not matter.
 */
final class TokenizerFiles {

    /**
     * The most a tokenizer may hold, compressed or not: Llama 2's tokenizer.json is about 2 MB, so
     * 256 MiB is generous, and a gzip bomb or a wrong file is refused before it fills the heap.
     */
    static final int MAX_BYTES = 256 << 20;

    private TokenizerFiles() {
    }

    static TokenizerSpec read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null, "tokenizer file not found");
        }
        try (InputStream in = Files.newInputStream(file)) {
            return read(in, file.toString());
        }
    }

    static TokenizerSpec read(InputStream in, String source) throws IOException {
        byte[] content = readCapped(in, source, "");
        if (content.length >= 2 && (content[0] & 0xFF) == 0x1F && (content[1] & 0xFF) == 0x8B) {
            try (InputStream gzip = new GZIPInputStream(new ByteArrayInputStream(content))) {
                content = readCapped(gzip, source, " uncompressed");
            } catch (IOException e) {
                throw new IOException(source + ": corrupt gzip data: " + e.getMessage(), e);
            }
        }
        if (content.length == 0) {
            throw new IllegalArgumentException(source + ": empty tokenizer file");
        }
        return startsWithBrace(content)
                ? HuggingFaceTokenizerJson.parse(content, source)
                : SentencePieceModel.parse(content, source);
    }

    /** All of {@code in}, refused in one line once it passes {@link #MAX_BYTES}. */
    private static byte[] readCapped(InputStream in, String source, String what) throws IOException {
        byte[] content = in.readNBytes(MAX_BYTES + 1);
        if (content.length > MAX_BYTES) {
            throw new IllegalArgumentException(source + ": more than " + (MAX_BYTES >> 20) + " MiB" + what
                    + ", too large for a tokenizer (Llama 2's is about 2 MB)");
        }
        return content;
    }

    /**
     * Line feeds do not count as blank here: 0x0A is the tag every ModelProto starts with (field
     * 1, its pieces), and skipping it could land on a '{' inside the first piece.
     */
    private static boolean startsWithBrace(byte[] content) {
        for (byte b : content) {
            if (b != ' ' && b != '\t' && b != '\r') {
                return b == '{';
            }
        }
        return false;
    }
}
