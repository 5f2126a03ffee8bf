package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.data.corpus.DocumentReader;
import io.tinyllamaj.data.corpus.JsonlReader;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama tokenize}: prints the token ids of text as JSON lines {@code {"ids": [...]}},
 * one per input, so data can be checked against other tokenizers from the shell.
 */
@Command(name = "tokenize",
        mixinStandardHelpOptions = true,
        description = "Print token ids, one JSON line {\"ids\": [...]} per input (BOS first unless --no-bos).")
public final class TokenizeCommand implements Callable<Integer> {
    private static final byte[] PARQUET_MAGIC = {'P', 'A', 'R', '1'};
    private static final byte[] ZSTD_MAGIC = {0x28, (byte) 0xB5, 0x2F, (byte) 0xFD};

    @Spec
    private CommandSpec spec;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE|llama2",
            description = "tokenizer.json, tokenizer.json.gz or tokenizer.model; llama2 for the built-in Llama 2 tokenizer")
    private String tokenizer;

    @ArgGroup(exclusive = true, multiplicity = "1")
    private Input input;

    @Option(names = "--no-bos", description = "Do not start each sequence with BOS.")
    private boolean noBos;

    @Option(names = "--eos", description = "End each sequence with EOS.")
    private boolean eos;

    /** Exactly one source of text. */
    static final class Input {
        @Option(names = "--text", required = true, paramLabel = "TEXT", description = "The text to tokenize.")
        String text;

        @Option(names = "--input", required = true, paramLabel = "FILE.jsonl",
                description = "One {\"text\": ...} object per line (blank lines skipped); one output line each.")
        Path file;
    }

    @Override
    public Integer call() throws IOException {
        LlamaTokenizer encoder = LlamaTokenizer.open(tokenizer);
        PrintWriter out = spec.commandLine().getOut();
        if (input.text != null) {
            print(encoder.encode(input.text, !noBos, eos), out);
        } else {
            tokenizeLines(encoder, out);
        }
        out.flush();
        return 0;
    }

    private void tokenizeLines(LlamaTokenizer encoder, PrintWriter out) throws IOException {
        if (!Files.isRegularFile(input.file)) {
            throw new NoSuchFileException(input.file.toString(), null, "input file not found");
        }
        ObjectMapper json = new ObjectMapper();
        try (InputStream in = new BufferedInputStream(Files.newInputStream(input.file), 1 << 16)) {
            requireText(in);
            ByteArrayOutputStream line = new ByteArrayOutputStream();
            int lineNumber = 0;
            for (int b = in.read(); b >= 0 || line.size() > 0; b = in.read()) {
                if (b >= 0 && b != '\n') {
                    if (line.size() >= DocumentReader.MAX_DOCUMENT_BYTES) {
                        throw new IllegalArgumentException(input.file + ":" + (lineNumber + 1) + ": longer than "
                                + (DocumentReader.MAX_DOCUMENT_BYTES >> 20) + " MiB");
                    }
                    line.write(b);
                    continue;
                }
                lineNumber++;
                String text = decode(line.toByteArray(), lineNumber);
                line.reset();
                if (!text.isBlank()) {
                    print(encoder.encode(textOf(json, text, lineNumber), !noBos, eos), out);
                }
            }
        }
    }

    /** Compressed and columnar files are named as such instead of failing as undecodable text. */
    private void requireText(InputStream in) throws IOException {
        in.mark(4);
        byte[] head = in.readNBytes(4);
        in.reset();
        if (Arrays.equals(head, PARQUET_MAGIC)) {
            throw new IllegalArgumentException(input.file + ": a parquet file, not JSON Lines (--input reads one"
                    + " {\"text\": ...} object per line)");
        }
        if (Arrays.equals(head, ZSTD_MAGIC)) {
            throw new IllegalArgumentException(input.file + ": zstd-compressed data, not JSON Lines (decompress it"
                    + " first: zstd -d)");
        }
    }

    /** One line as text: strict UTF-8 (a Reader would stop with "Input length = 1", naming nothing), without BOM or CR. */
    private String decode(byte[] bytes, int lineNumber) {
        int from = lineNumber == 1 && bytes.length >= 3 && (bytes[0] & 0xFF) == 0xEF && (bytes[1] & 0xFF) == 0xBB
                && (bytes[2] & 0xFF) == 0xBF ? 3 : 0;
        int to = bytes.length > from && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes, from, to - from)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(input.file + ":" + lineNumber + ": not valid UTF-8");
        }
    }

    private String textOf(ObjectMapper json, String line, int lineNumber) {
        JsonNode text;
        try {
            text = json.readTree(line).path("text");
        } catch (JacksonException e) {
            throw new IllegalArgumentException(input.file + ":" + lineNumber + ": not valid JSON: " + e.getOriginalMessage());
        }
        if (!text.isTextual()) {
            throw new IllegalArgumentException(input.file + ":" + lineNumber + ": expected an object with a \"text\" string");
        }
        // a JSON escape of half a surrogate pair decodes to no character: refused like bad bytes, never U+FFFD
        int surrogate = JsonlReader.loneSurrogate(text.asText());
        if (surrogate >= 0) {
            throw new IllegalArgumentException(input.file + ":" + lineNumber + ": not valid UTF-8 ("
                    + JsonlReader.surrogateDetail(text.asText(), surrogate) + ")");
        }
        return text.asText();
    }

    private static void print(int[] ids, PrintWriter out) {
        StringBuilder line = new StringBuilder(16 + 7 * ids.length).append("{\"ids\": [");
        for (int i = 0; i < ids.length; i++) {
            line.append(i == 0 ? "" : ", ").append(ids[i]);
        }
        out.println(line.append("]}"));
    }
}
