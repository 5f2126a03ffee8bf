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
        byte[] content = in.readAllBytes();
        if (content.length >= 2 && (content[0] & 0xFF) == 0x1F && (content[1] & 0xFF) == 0x8B) {
            try (InputStream gzip = new GZIPInputStream(new ByteArrayInputStream(content))) {
                content = gzip.readAllBytes();
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
