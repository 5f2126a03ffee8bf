package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.model.hf.LitGptCheckpoint;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The model shape of a lit-gpt checkpoint: a config.json or a preset the user names, else the
 * lit-gpt config its hparams name when we know it. Never guessed from tensor shapes: the head
 * counts cannot be read off them.
 */
final class LitGptShape {

    private LitGptShape() {
    }

    static LlamaConfig resolve(LitGptCheckpoint lit, Path modelConfig, String preset) throws IOException {
        if (modelConfig != null && preset != null) {
            throw new IllegalArgumentException("--model-config and --preset exclude each other");
        }
        if (modelConfig != null) {
            return HfCheckpoint.readConfigFile(modelConfig);
        }
        if (preset != null) {
            return LlamaConfig.preset(preset);
        }
        return lit.configFromHparams().orElseThrow(() -> new IllegalArgumentException(lit.file() + ": its hparams name "
                + lit.modelName() + ", not a lit-gpt config whose shape is known (tiny_LLaMA_1b); give the shape with "
                + "--model-config CONFIG_JSON or --preset NAME"));
    }
}
