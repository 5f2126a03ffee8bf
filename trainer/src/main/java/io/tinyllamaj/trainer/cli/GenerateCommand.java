package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.generate.Generator;
import io.tinyllamaj.model.generate.Sampler;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.trainer.Backends;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama generate}: continues a prompt with a KV cache. A text prompt prints text as it
 * is produced; a token prompt prints one JSON line {"tokens": [...]} of the new ids.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continue a prompt (text or token ids) from a Hugging Face Llama checkpoint.")
public final class GenerateCommand implements Callable<Integer> {

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR", description = "Hugging Face Llama checkpoint directory.")
    private Path checkpoint;

    @ArgGroup(exclusive = true, multiplicity = "1")
    private Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "Text prompt (tokenized with --tokenizer, BOS first).")
        String text;

        @Option(names = "--prompt-tokens", required = true, paramLabel = "1,2,3", description = "Prompt as comma-separated token ids.")
        String tokens;
    }

    @Option(names = "--tokenizer", paramLabel = "FILE|llama2",
            description = "Tokenizer for text prompts (default: the checkpoint's tokenizer.json or tokenizer.model, as eval "
                    + "takes it, else the built-in Llama 2 tokenizer).")
    private String tokenizer;

    @Option(names = "--max-new-tokens", defaultValue = "64", description = "Tokens to generate, at most what the model's context leaves after the prompt (default: ${DEFAULT-VALUE}).")
    private int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0.8", description = "0 for greedy (default: ${DEFAULT-VALUE}).")
    private float temperature;

    @Option(names = "--top-k", defaultValue = "50", description = "Sample among the k most likely tokens; 0 for all (default: ${DEFAULT-VALUE}).")
    private int topK;

    @Option(names = "--top-p", defaultValue = "0.95", description = "Nucleus sampling mass (default: ${DEFAULT-VALUE}).")
    private float topP;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--ignore-eos", description = "Keep generating after the end-of-sequence token.")
    private boolean ignoreEos;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    private String device;

    @Override
    public Integer call() throws Exception {
        // Every setting is checked before anything is loaded or sized by it.
        if (maxNewTokens <= 0) {
            throw new IllegalArgumentException("--max-new-tokens must be positive, got " + maxNewTokens);
        }
        Sampler sampler = new Sampler(temperature, topK, topP, seed);
        LlamaTokenizer text = prompt.text != null ? CheckpointModels.tokenizerOrLlama2(tokenizer, checkpoint) : null;
        int[] ids = text != null ? text.encode(prompt.text, true, false) : TokenList.parse("--prompt-tokens", prompt.tokens);
        LlamaModel model = HfCheckpoint.load(checkpoint, Backends.create(device));
        if (text != null) {
            sampler = sampler.limitedTo(decodableIds(text, model.config().vocabSize()));
        }
        TokenList.checkVocabulary(text != null ? "--prompt" : "--prompt-tokens", ids, model.config().vocabSize());
        int stop = ignoreEos ? -1 : (text != null ? text.eosId() : 2);
        Generator generator = new Generator(model);
        int room = generator.room(ids.length);
        if (maxNewTokens > room && room > 0) {
            System.err.printf("warning: --max-new-tokens %d is more than the %d tokens left in the model's context (max_seq_len %d, "
                    + "prompt %d tokens); generating at most %d%n", maxNewTokens, room, model.config().maxSeqLen(), ids.length, room);
        }
        if (text == null) {
            int[] produced = generator.generate(ids, maxNewTokens, sampler, stop, token -> {
            });
            System.out.println(new ObjectMapper().writeValueAsString(Map.of("tokens", produced)));
            return 0;
        }
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        List<Integer> all = new ArrayList<>();
        for (int id : ids) {
            all.add(id);
        }
        // Decode prompt and continuation together each time: SentencePiece drops the leading
        // space of the first piece only, and a character may span several byte tokens.
        String[] shown = {text.decode(ids)};
        out.print(shown[0]);
        generator.generate(ids, maxNewTokens, sampler, stop, token -> {
            all.add(token);
            String decoded = text.decode(all.stream().mapToInt(Integer::intValue).toArray());
            if (decoded.startsWith(shown[0]) && !decoded.endsWith("\uFFFD")) {
                out.print(decoded.substring(shown[0].length()));
                shown[0] = decoded;
            }
        });
        out.println();
        return 0;
    }

    /**
     * The ids text generation may produce: the tokenizer's. A model's vocabulary is often padded
     * past its tokenizer's (to a multiple of 64, say), and those rows decode to nothing; a
     * tokenizer larger than the vocabulary belongs to another model.
     */
    private int decodableIds(LlamaTokenizer text, int modelVocab) {
        if (text.vocabSize() > modelVocab) {
            throw new IllegalArgumentException("the tokenizer " + CheckpointModels.tokenizerName(tokenizer, checkpoint) + " has " + text.vocabSize() + " pieces but the model's "
                    + "vocabulary has " + modelVocab + " ids: they do not belong together (pass the checkpoint's own tokenizer with --tokenizer)");
        }
        return text.vocabSize();
    }
}
