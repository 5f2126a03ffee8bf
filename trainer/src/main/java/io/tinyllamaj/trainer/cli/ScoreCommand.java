package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.trainer.Backends;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama score}: the log-probability a checkpoint gives each next token, as Hugging
 * Face's LlamaForCausalLM would compute it; one JSON line {"loss": ..., "logprobs": [...]}.
 */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = "Print {\"loss\": mean next-token cross-entropy, \"logprobs\": [log p(token i+1 | tokens 0..i)]} for a token sequence.")
public final class ScoreCommand implements Callable<Integer> {

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR", description = "Hugging Face Llama checkpoint directory.")
    private Path checkpoint;

    @Option(names = "--tokens", required = true, paramLabel = "1,2,3", description = "Comma-separated token ids (at least two).")
    private String tokens;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    private String device;

    @Override
    public Integer call() throws Exception {
        int[] ids = TokenList.parse("--tokens", tokens);
        if (ids.length < 2) {
            throw new IllegalArgumentException("--tokens: scoring needs at least two tokens (the first is only context)");
        }
        LlamaModel model = HfCheckpoint.load(checkpoint, Backends.create(device));
        TokenList.checkVocabulary("--tokens", ids, model.config().vocabSize());
        if (ids.length > model.config().maxSeqLen()) {
            throw new IllegalArgumentException("--tokens: " + ids.length + " tokens exceed the model's context of " + model.config().maxSeqLen());
        }
        int[] targets = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            targets[i] = i + 1 < ids.length ? ids[i + 1] : -1;
        }
        float[] losses = model.losses(ids, targets, 1, ids.length);
        double[] logprobs = new double[ids.length - 1];
        double sum = 0;
        for (int i = 0; i < logprobs.length; i++) {
            logprobs[i] = -losses[i];
            sum += losses[i];
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("loss", sum / logprobs.length);
        out.put("logprobs", logprobs);
        System.out.println(new ObjectMapper().writeValueAsString(out));
        return 0;
    }
}
