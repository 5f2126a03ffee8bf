package io.tinyllamaj.model;

import io.tinyllamaj.model.hf.SafeTensors;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Writes a reference model as a Hugging Face directory, with a config.json written by hand. */
public final class Checkpoints {

    private Checkpoints() {
    }

    public static Path write(ReferenceLlama ref, Path dir) throws IOException {
        Files.createDirectories(dir);
        LlamaConfig c = ref.c;
        String config = """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": %d, "hidden_size": %d,
                 "intermediate_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d, "num_key_value_heads": %d,
                 "rms_norm_eps": %s, "rope_theta": %s, "max_position_embeddings": %d, "tie_word_embeddings": %s,
                 "torch_dtype": "float32"}
                """.formatted(c.vocabSize(), c.dim(), c.intermediate(), c.layers(), c.heads(), c.kvHeads(),
                (double) c.normEps(), (double) c.ropeTheta(), c.maxSeqLen(), c.tieEmbeddings());
        Files.writeString(dir.resolve("config.json"), config);
        List<SafeTensors.Entry> entries = new ArrayList<>();
        for (Map.Entry<String, double[]> e : ref.w.entrySet()) {
            float[] f = new float[e.getValue().length];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) e.getValue()[i];
            }
            entries.add(new SafeTensors.Entry(e.getKey(), shapeOf(c, e.getKey()), f, 0, SafeTensors.DType.F32));
        }
        SafeTensors.write(dir.resolve("model.safetensors"), entries, Map.of("format", "pt"));
        return dir;
    }

    static long[] shapeOf(LlamaConfig c, String name) {
        int q = c.heads() * c.headSize(), kv = c.kvHeads() * c.headSize();
        if (name.endsWith("norm.weight") || name.endsWith("layernorm.weight")) {
            return new long[]{c.dim()};
        }
        if (name.endsWith("q_proj.weight")) {
            return new long[]{q, c.dim()};
        }
        if (name.endsWith("k_proj.weight") || name.endsWith("v_proj.weight")) {
            return new long[]{kv, c.dim()};
        }
        if (name.endsWith("o_proj.weight")) {
            return new long[]{c.dim(), q};
        }
        if (name.endsWith("gate_proj.weight") || name.endsWith("up_proj.weight")) {
            return new long[]{c.intermediate(), c.dim()};
        }
        if (name.endsWith("down_proj.weight")) {
            return new long[]{c.dim(), c.intermediate()};
        }
        return new long[]{c.vocabSize(), c.dim()};
    }
}
