package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.data.corpus.CorpusSource;
import io.tinyllamaj.data.corpus.ReadReport;
import io.tinyllamaj.data.shards.DocumentEncoder;
import io.tinyllamaj.data.shards.LogProgress;
import io.tinyllamaj.data.shards.PrepareOptions;
import io.tinyllamaj.data.shards.PreparePipeline;
import io.tinyllamaj.data.shards.PrepareProgress;
import io.tinyllamaj.data.shards.PrepareResult;
import io.tinyllamaj.data.shards.ShardManifest;
import io.tinyllamaj.data.shards.TerminalProgress;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import java.io.Console;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tinyllama prepare}: tokenizes a corpus into Arrow token shards plus a manifest
 * (docs/data.md). Bad records are counted and listed at the end; {@code --strict} makes the
 * first one an error. Re-running an interrupted preparation continues after its last shard.
 * The output directory must be new, empty or this preparation's own; a run that reads no
 * usable document fails and writes nothing.
 */
@Command(name = "prepare",
        mixinStandardHelpOptions = true,
        description = "Tokenize a corpus (SlimPajama, StarCoderData, JSON Lines or text files) into token shards.")
public final class PrepareCommand implements Callable<Integer> {
    private static final int LISTED_PROBLEMS = 20;

    @Option(names = "--source", required = true, paramLabel = "slimpajama|starcoder|jsonl|text",
            description = "Input format: slimpajama (.jsonl[.zst], RedPajamaGithub left out), starcoder (.parquet, "
                    + "column content), jsonl (.jsonl[.zst], field text), text (one document per file).")
    private String source;

    @Option(names = "--input", required = true, paramLabel = "GLOB",
            description = "Input files: a glob such as 'data/train/**/*.jsonl.zst', a file or a directory; repeatable.")
    private List<String> inputs;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE|llama2",
            description = "tokenizer.json, tokenizer.json.gz or tokenizer.model; llama2 for the built-in Llama 2 tokenizer")
    private String tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Directory for the shards and manifest.json: new, empty, or an earlier run of the same command.")
    private Path out;

    @Option(names = "--workers", paramLabel = "N", description = "Tokenizer threads (default: all cores, ${DEFAULT-VALUE}).")
    private int workers = Runtime.getRuntime().availableProcessors();

    @Option(names = "--strict", description = "Stop at the first unusable record instead of counting it.")
    private boolean strict;

    @Option(names = "--shard-tokens", paramLabel = "N",
            description = "Close a shard at the first document end at or past N tokens (default: ${DEFAULT-VALUE}).")
    private long shardTokens = PrepareOptions.DEFAULT_SHARD_TOKENS;

    @Override
    public Integer call() throws IOException {
        LlamaTokenizer llama = LlamaTokenizer.open(tokenizer);
        PrepareOptions options = new PrepareOptions(CorpusSource.parse(source), inputs, out, workers, strict, shardTokens);
        PrepareResult result;
        try (PrepareProgress progress = progressFor(System.err)) {
            result = new PreparePipeline(options, DocumentEncoder.of(llama), progress).run();
        }
        printSummary(result, System.out);
        return 0;
    }


    /** A redrawn bar on a terminal; plain lines every 10 s in logs and pipes. */
    private static PrepareProgress progressFor(PrintStream err) {
        Console console = System.console();
        if (console != null && console.isTerminal()) {
            return new ProgressOnTerminal();
        }
        return new LogProgress(err, Duration.ofSeconds(10));
    }

    /** Creates the bar once the input size is known, at the first update. */
    private static final class ProgressOnTerminal implements PrepareProgress {
        private TerminalProgress bar;

        @Override
        public void update(long inputBytesDone, long inputBytesTotal, long textBytes, long tokens) {
            if (bar == null) {
                bar = new TerminalProgress(inputBytesTotal);
            }
            bar.update(inputBytesDone, inputBytesTotal, textBytes, tokens);
        }

        @Override
        public void close() {
            if (bar != null) {
                bar.close();
            }
        }
    }

    private static void printSummary(PrepareResult result, PrintStream out) {
        ShardManifest manifest = result.manifest();
        ReadReport report = result.report();
        for (ReadReport.Problem problem : report.problems().subList(0, Math.min(LISTED_PROBLEMS, report.problems().size()))) {
            out.println("prepare: skipped " + problem.line());
        }
        if (report.problems().size() > LISTED_PROBLEMS) {
            out.println("prepare: ... and " + (report.problems().size() - LISTED_PROBLEMS) + " more");
        }
        out.printf("prepare: %,d documents, %,d tokens in %d shards (%d reused) -> manifest.json%n", manifest.documents(),
                manifest.tokens(), manifest.shards().size(), result.shardsReused());
        if (result.seconds() > 0) {
            out.printf("prepare: %.1f MB of text in %.1f s (%.2f MB/s); %s%n", result.textBytes() / 1e6, result.seconds(),
                    result.textBytes() / 1e6 / result.seconds(), report.summary());
        }
    }
}
