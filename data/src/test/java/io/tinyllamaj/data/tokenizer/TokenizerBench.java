package io.tinyllamaj.data.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The Java side of scripts/bench-tokenizer.
 * <pre>
 *   TokenizerBench corpus OUT.jsonl MEGABYTES   writes TestCorpus texts as {"text": ...} lines
 *   TokenizerBench bench IN.jsonl               times LlamaTokenizer.llama2() on them and prints
 *                                               {"bytes", "tokens", "seconds_one_thread", "threads", "seconds_all_threads"}
 * </pre>
 * One thread encodes the whole corpus (after a warm-up pass, best of three); then every core
 * encodes the whole corpus at once (best of three), so the all-cores rate is
 * threads x bytes / wall time.
 */
public final class TokenizerBench {

    public static void main(String[] args) throws Exception {
        switch (args.length == 0 ? "" : args[0]) {
            case "corpus" -> writeCorpus(Path.of(args[1]), Double.parseDouble(args[2]));
            case "bench" -> bench(Path.of(args[1]));
            default -> throw new IllegalArgumentException("usage: TokenizerBench (corpus OUT.jsonl MEGABYTES | bench IN.jsonl)");
        }
    }

    private static void writeCorpus(Path out, double megabytes) throws IOException {
        ObjectMapper json = new ObjectMapper();
        long bytes = 0;
        try (BufferedWriter writer = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
            for (long seed = 1; bytes < megabytes * 1e6; seed++) {
                for (String text : TestCorpus.texts(1000, seed)) {
                    writer.write(json.writeValueAsString(Map.of("text", text)));
                    writer.newLine();
                    bytes += text.getBytes(StandardCharsets.UTF_8).length;
                }
            }
        }
    }

    private static void bench(Path in) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<String> texts = new ArrayList<>();
        long bytes = 0;
        for (String line : Files.readAllLines(in, StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
                String text = json.readTree(line).get("text").asText();
                texts.add(text);
                bytes += text.getBytes(StandardCharsets.UTF_8).length;
            }
        }
        LlamaTokenizer tokenizer = LlamaTokenizer.llama2();
        long tokens = encodeAll(tokenizer, texts);
        double oneThread = Double.MAX_VALUE;
        for (int round = 0; round < 3; round++) {
            long start = System.nanoTime();
            encodeAll(tokenizer, texts);
            oneThread = Math.min(oneThread, (System.nanoTime() - start) / 1e9);
        }
        int threads = Runtime.getRuntime().availableProcessors();
        double allThreads = Double.MAX_VALUE;
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            for (int round = 0; round < 3; round++) {
                List<Future<Long>> results = new ArrayList<>();
                long start = System.nanoTime();
                for (int t = 0; t < threads; t++) {
                    results.add(pool.submit(() -> encodeAll(tokenizer, texts)));
                }
                for (Future<Long> result : results) {
                    result.get();
                }
                allThreads = Math.min(allThreads, (System.nanoTime() - start) / 1e9);
            }
        }
        System.out.printf("{\"bytes\": %d, \"tokens\": %d, \"seconds_one_thread\": %.4f, \"threads\": %d, \"seconds_all_threads\": %.4f}%n",
                bytes, tokens, oneThread, threads, allThreads);
    }

    private static long encodeAll(LlamaTokenizer tokenizer, List<String> texts) {
        long tokens = 0;
        for (String text : texts) {
            tokens += tokenizer.encode(text, true, false).length;
        }
        return tokens;
    }
}
