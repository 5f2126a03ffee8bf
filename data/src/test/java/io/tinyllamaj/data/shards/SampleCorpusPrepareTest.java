package io.tinyllamaj.data.shards;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.tinyllamaj.data.corpus.CorpusSource;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.data.sampler.WeightedSource;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** End to end on the committed sample corpus: both formats, the Llama 2 tokenizer, the 7:3 mixture. */
class SampleCorpusPrepareTest {
    private static final Path SAMPLES = Path.of("..", "samples");

    @TempDir
    Path dir;

    private ShardManifest prepare(CorpusSource source, String glob, String name, LlamaTokenizer llama) throws IOException {
        DocumentEncoder encoder = DocumentEncoder.of(llama);
        PrepareOptions options = new PrepareOptions(source, List.of(SAMPLES.resolve(glob).toString()), dir.resolve(name),
                2, true, 1 << 18);
        return new PreparePipeline(options, encoder, PrepareProgress.NONE).run().manifest();
    }

    @Test
    void samplesPrepareCleanlyAndFeedTheMixture() throws IOException {
        assertTrue(Files.isDirectory(SAMPLES), "run from the data module: " + SAMPLES.toAbsolutePath());
        LlamaTokenizer llama = LlamaTokenizer.llama2();
        ShardManifest slim = prepare(CorpusSource.SLIMPAJAMA, "slimpajama/*.jsonl.zst", "slim", llama);
        ShardManifest star = prepare(CorpusSource.STARCODER, "starcoder/*.parquet", "star", llama);
        assertEquals(58, slim.documents(), "60 lines less the 2 RedPajamaGithub ones");
        assertEquals(54, star.documents());
        assertTrue(slim.tokens() > 300_000 && star.tokens() > 300_000, slim.tokens() + " / " + star.tokens());

        try (TokenSource slimTokens = TokenSources.open(dir.resolve("slim").toString(), 32000, Verification.FULL);
             TokenSource starTokens = TokenSources.open(dir.resolve("star").toString(), 32000, Verification.FULL)) {
            MixtureSampler sampler = new MixtureSampler(List.of(new WeightedSource("slimpajama", slimTokens, 0.7),
                    new WeightedSource("starcoder", starTokens, 0.3)), 256, 3407, 0, 1, 8);
            int[] block = new int[257];
            for (int i = 0; i < 1000; i++) {
                sampler.nextBlock(block);
            }
            assertEquals(700L * 257, sampler.tokensPerSource().get("slimpajama"));
            assertEquals(16, sampler.validationBlocks(100).size());
        }
    }
}
