package io.tinyllamaj.trainer.data;

import io.tinyllamaj.data.corpus.CorpusSource;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.data.sampler.WeightedSource;
import io.tinyllamaj.data.shards.DocumentEncoder;
import io.tinyllamaj.data.shards.LogProgress;
import io.tinyllamaj.data.shards.PrepareOptions;
import io.tinyllamaj.data.shards.PreparePipeline;
import io.tinyllamaj.data.shards.PrepareResult;
import io.tinyllamaj.data.shards.ShardManifest;
import io.tinyllamaj.data.shards.TokenSource;
import io.tinyllamaj.data.shards.TokenSources;
import io.tinyllamaj.data.shards.Verification;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Opens a config's data sources and the mixture sampler over them. A source with a
 * {@code prepare} section is prepared from its raw files first when its shard directory has
 * no manifest (the prepare pipeline itself reuses a finished directory whose inputs did not
 * change). Relative paths are tried against the working directory first and then against
 * the project directory, so the embedded demo finds {@code samples/} from anywhere.
 */
public final class TrainingData implements AutoCloseable {

    private final List<TokenSource> opened;
    private final MixtureSampler sampler;

    private TrainingData(List<TokenSource> opened, MixtureSampler sampler) {
        this.opened = opened;
        this.sampler = sampler;
    }

    public MixtureSampler sampler() {
        return sampler;
    }

    /**
     * Tokenizes the sources that name a {@code prepare} block and are not prepared yet. Under
     * mpirun only rank 0 calls this, then every rank waits at a barrier before {@link #open}:
     * ranks preparing one directory at once would trip over each other's temporary files.
     */
    public static void prepareMissing(TrainingConfig config, PrintStream log) throws IOException {
        for (TrainingConfig.Source source : config.data().sources()) {
            if (source.prepare() != null) {
                prepare(config.data().tokenizer(), source, ProjectPaths.resolveOutput(source.path()), log);
            }
        }
    }

    public static TrainingData open(TrainingConfig config, RunShape shape, int rank, PrintStream log) throws IOException {
        List<WeightedSource> sources = new ArrayList<>();
        List<TokenSource> opened = new ArrayList<>();
        Map<String, String> sourceOf = new HashMap<>();
        try {
            for (TrainingConfig.Source source : config.data().sources()) {
                Path location = ProjectPaths.resolveOutput(source.path());
                // one folder as two sources would train on its data twice, each at its own weight
                String identity = Files.exists(location) ? location.toRealPath().toString() : location.toAbsolutePath().normalize().toString();
                String other = sourceOf.putIfAbsent(identity, source.name());
                if (other != null) {
                    throw new IllegalArgumentException("data sources " + other + " and " + source.name() + " both read " + identity
                            + ": one source's data would be trained on twice");
                }
                TokenSource tokens = TokenSources.open(location.toString(), shape.model().vocabSize(), Verification.HEADERS);
                opened.add(tokens);
                sources.add(new WeightedSource(source.name(), tokens, source.weight()));
            }
            requireTokenizerOfTheShards(config);
            MixtureSampler sampler = new MixtureSampler(sources, shape.seqLen(), config.train().seed(), rank,
                    shape.worldSize(), config.data().valBlocks(), config.data().shuffle());
            return new TrainingData(opened, sampler);
        } catch (IOException | RuntimeException e) {
            opened.forEach(TokenSource::close);
            throw e;
        }
    }

    /**
     * data.tokenizer must be the one the prepared shards were made with (their manifest records
     * its checksum): it prepares the missing sources and tokenizes the eval tasks, which would
     * otherwise read text as other ids than training did. A path that is not a tokenizer is
     * refused even where no shard records one (lit-gpt .bin chunks).
     */
    private static void requireTokenizerOfTheShards(TrainingConfig config) throws IOException {
        String name = config.data().tokenizer();
        List<Path> prepared = new ArrayList<>();
        for (TrainingConfig.Source source : config.data().sources()) {
            Path location = ProjectPaths.resolveOutput(source.path());
            if (Files.isRegularFile(location.resolve(ShardManifest.FILE_NAME))) {
                prepared.add(location);
            }
        }
        if (prepared.isEmpty() && name.equals(LlamaTokenizer.BUILT_IN_NAME)) {
            return;
        }
        LlamaTokenizer tokenizer = name.equals(LlamaTokenizer.BUILT_IN_NAME) ? LlamaTokenizer.llama2()
                : LlamaTokenizer.load(ProjectPaths.resolveOutput(name));
        for (Path location : prepared) {
            String recorded = ShardManifest.read(location).tokenizer();
            if (!tokenizer.checksum().equals(recorded)) {
                throw new IllegalArgumentException("data.tokenizer " + name + " is not the tokenizer " + location
                        + " was prepared with (its manifest records checksum " + recorded + ", data.tokenizer's is "
                        + tokenizer.checksum() + ")");
            }
        }
    }

    private static void prepare(String tokenizerName, TrainingConfig.Source source, Path out, PrintStream log)
            throws IOException {
        List<String> inputs = new ArrayList<>();
        for (String input : source.prepare().inputs()) {
            inputs.add(ProjectPaths.resolveInput(input));
        }
        boolean fresh = !Files.isRegularFile(out.resolve(ShardManifest.FILE_NAME));
        if (fresh) {
            log.println("preparing data source " + source.name() + " from " + String.join(", ", source.prepare().inputs())
                    + " into " + out + " (first use)");
        }
        LlamaTokenizer tokenizer = tokenizerName.equals(LlamaTokenizer.BUILT_IN_NAME) ? LlamaTokenizer.llama2()
                : LlamaTokenizer.load(ProjectPaths.resolveOutput(tokenizerName));
        PrepareOptions options = new PrepareOptions(CorpusSource.parse(source.prepare().format()), inputs, out,
                Math.max(1, Runtime.getRuntime().availableProcessors()), false, PrepareOptions.DEFAULT_SHARD_TOKENS);
        try (LogProgress progress = new LogProgress(log, Duration.ofSeconds(10))) {
            PrepareResult result = new PreparePipeline(options, DocumentEncoder.of(tokenizer), progress).run();
            if (fresh) {
                log.printf("prepared %s: %,d documents, %,d tokens in %.1f s%n", source.name(),
                        result.manifest().documents(), result.manifest().tokens(), result.seconds());
            }
        }
    }


    @Override
    public void close() {
        opened.forEach(TokenSource::close);
    }
}
