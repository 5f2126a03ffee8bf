package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.TrainState;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** A model from a Hugging Face directory, a run directory (its newest complete checkpoint) or one training checkpoint. */
final class CheckpointModels {

    private static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer.model");

    private CheckpointModels() {
    }

    static LlamaModel load(Path dir, Backend backend) throws IOException {
        if (HfCheckpoint.isCheckpoint(dir)) {
            return HfCheckpoint.load(dir, backend);
        }
        Path source = dir;
        if (Files.isDirectory(dir.resolve("checkpoints"))) {
            source = new CheckpointStore(dir).findResumable(w -> System.err.println("warning: " + w))
                    .orElseThrow(() -> new IllegalArgumentException(dir + " has no complete checkpoint"));
        }
        if (!Files.isRegularFile(source.resolve(CheckpointStore.PARAMS))) {
            throw new IllegalArgumentException(dir + " is neither a Hugging Face checkpoint (config.json and safetensors), "
                    + "a run directory nor a training checkpoint");
        }
        CheckpointStore.verify(source);
        LlamaConfig config = TrainState.read(source).model();
        LlamaModel model = new LlamaModel(backend, config);
        CheckpointStore.readTensor(source.resolve(CheckpointStore.PARAMS), backend, model.parameters());
        return model;
    }

    /** {@link #tokenizer}, with the built-in Llama 2 tokenizer where the checkpoint carries none. */
    static LlamaTokenizer tokenizerOrLlama2(String option, Path checkpoint) throws IOException {
        String name = tokenizerName(option, checkpoint);
        return name.equals(LlamaTokenizer.BUILT_IN_NAME) ? LlamaTokenizer.llama2() : tokenizer(option, checkpoint);
    }

    /** What {@link #tokenizerOrLlama2} reads, for messages: the option, the checkpoint's file, or llama2. */
    static String tokenizerName(String option, Path checkpoint) {
        if (option != null) {
            return option;
        }
        return TOKENIZER_FILES.stream().map(checkpoint::resolve).filter(Files::isRegularFile).findFirst().map(Path::toString)
                .orElse(LlamaTokenizer.BUILT_IN_NAME);
    }

    /** {@code --tokenizer} when given, else the checkpoint directory's tokenizer.json or tokenizer.model. */
    static LlamaTokenizer tokenizer(String option, Path checkpoint) throws IOException {
        if (option != null) {
            return LlamaTokenizer.open(option);
        }
        for (String name : TOKENIZER_FILES) {
            if (Files.isRegularFile(checkpoint.resolve(name))) {
                return LlamaTokenizer.load(checkpoint.resolve(name));
            }
        }
        throw new IllegalArgumentException(checkpoint + " has no tokenizer.json or tokenizer.model: pass --tokenizer FILE|llama2");
    }
}
