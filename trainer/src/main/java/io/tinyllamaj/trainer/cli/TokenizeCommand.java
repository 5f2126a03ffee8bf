package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama tokenize}: prints the token ids of text as JSON lines {@code {"ids": [...]}},
 * one per input, so data can be checked against other tokenizers from the shell.
 */
@Command(name = "tokenize",
        mixinStandardHelpOptions = true,
        description = "Print token ids, one JSON line {\"ids\": [...]} per input (BOS first unless --no-bos).")
public final class TokenizeCommand implements Callable<Integer> {

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
        try (BufferedReader reader = Files.newBufferedReader(input.file, StandardCharsets.UTF_8)) {
            int lineNumber = 0;
            for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                lineNumber++;
                if (line.isBlank()) {
                    continue;
                }
                print(encoder.encode(textOf(json, line, lineNumber), !noBos, eos), out);
            }
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
