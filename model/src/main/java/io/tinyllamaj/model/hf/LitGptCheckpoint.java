package io.tinyllamaj.model.hf;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.torch.TorchArchive;
import io.tinyllamaj.model.torch.TorchTensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

/**
 * A lit-gpt training checkpoint as TinyLlama's pretrain script writes it ({@code torch.save} of
 * {"model": state dict in lit-gpt names, "optimizer", "hparams", "iter_num", "step_count"}; a bare
 * state dict is taken too). lit-gpt names map to ours: {@code transformer.wte} = embed,
 * {@code h.N.norm_1} / {@code norm_2} = the two RMSNorms, {@code attn.proj} = the output
 * projection, {@code mlp.swiglu.w1 / w2 / w3} = gate / up / down (xformers' SwiGLU),
 * {@code transformer.ln_f}, {@code lm_head}. {@code attn.attn} packs q, k and v per query group:
 * for each of the n_query_groups groups, its q_per_kv query heads, then its key head, then its
 * value head; ours stacks all q heads, then all k, then all v. Both use rotate-half RoPE.
 */
public final class LitGptCheckpoint implements AutoCloseable {

    /** lit-gpt config names whose shape we know, by our preset names. */
    private static final Map<String, String> KNOWN = Map.of("tiny_LLaMA_1b", "tinyllama-1.1b");

    private final TorchArchive archive;
    private final Map<String, TorchTensor> model;
    private final Map<?, ?> top;

    private LitGptCheckpoint(TorchArchive archive, Map<String, TorchTensor> model, Map<?, ?> top) {
        this.archive = archive;
        this.model = model;
        this.top = top;
    }

    public static LitGptCheckpoint open(Path file) throws IOException {
        TorchArchive archive = TorchArchive.open(file);
        try {
            if (!(archive.root() instanceof Map<?, ?> top)) {
                throw new IOException(file + ": holds no dict (not a lit-gpt checkpoint)");
            }
            Object weights = top.containsKey("model") ? top.get("model") : top;
            return new LitGptCheckpoint(archive, PyTorchWeights.stateDict(file, weights), top);
        } catch (IOException | RuntimeException e) {
            archive.close();
            throw e;
        }
    }

    public Path file() {
        return archive.file();
    }

    /** The top-level dict: "optimizer", "hparams", "iter_num", "step_count" where the file has them. */
    public Map<?, ?> top() {
        return top;
    }

    public TorchArchive archive() {
        return archive;
    }

    /** The shape the checkpoint's hparams name, where they name a lit-gpt config we know. */
    public Optional<LlamaConfig> configFromHparams() {
        if (top.get("hparams") instanceof Map<?, ?> hparams && hparams.get("model_name") instanceof String name
                && KNOWN.containsKey(name)) {
            return Optional.of(LlamaConfig.preset(KNOWN.get(name)));
        }
        return Optional.empty();
    }

    /** What the hparams call the model, for messages. */
    public String modelName() {
        return top.get("hparams") instanceof Map<?, ?> hparams && hparams.get("model_name") instanceof String name
                ? "'" + name + "'" : "no model_name";
    }

    /** Reads every weight into {@code model}, one parameter at a time. */
    public void loadWeights(LlamaModel target) throws IOException {
        LlamaConfig c = target.config();
        int hd = c.headSize(), qRows = c.heads() * hd, kvRows = c.kvHeads() * hd;
        copy(target, "embed", new float[][]{read("transformer.wte.weight", c.vocabSize(), c.dim())});
        for (int l = 0; l < c.layers(); l++) {
            String h = "transformer.h." + l + ".";
            copy(target, ParameterLayout.block(l, "attn_norm"), new float[][]{read(h + "norm_1.weight", 0, c.dim())});
            copy(target, ParameterLayout.block(l, "qkv"), new float[][]{
                    ungroupQkv(read(h + "attn.attn.weight", qRows + 2 * kvRows, c.dim()), c)});
            copy(target, ParameterLayout.block(l, "attn_out"), new float[][]{read(h + "attn.proj.weight", c.dim(), qRows)});
            copy(target, ParameterLayout.block(l, "mlp_norm"), new float[][]{read(h + "norm_2.weight", 0, c.dim())});
            copy(target, ParameterLayout.block(l, "gate_up"), new float[][]{
                    read(h + "mlp.swiglu.w1.weight", c.intermediate(), c.dim()),
                    read(h + "mlp.swiglu.w2.weight", c.intermediate(), c.dim())});
            copy(target, ParameterLayout.block(l, "down"), new float[][]{read(h + "mlp.swiglu.w3.weight", c.dim(), c.intermediate())});
        }
        copy(target, "final_norm", new float[][]{read("transformer.ln_f.weight", 0, c.dim())});
        if (!c.tieEmbeddings()) {
            copy(target, "lm_head", new float[][]{read("lm_head.weight", c.vocabSize(), c.dim())});
        }
    }

    /** The lit-gpt name of each of our parameters, in lit-gpt's {@code named_parameters()} order. */
    public static java.util.List<String> parameterNames(LlamaConfig c) {
        java.util.List<String> names = new java.util.ArrayList<>();
        if (!c.tieEmbeddings()) {
            names.add("lm_head.weight"); // GPT.__init__ creates lm_head before transformer
        }
        names.add("transformer.wte.weight");
        for (int l = 0; l < c.layers(); l++) {
            String h = "transformer.h." + l + ".";
            for (String p : new String[]{"norm_1", "attn.attn", "attn.proj", "norm_2", "mlp.swiglu.w1", "mlp.swiglu.w2", "mlp.swiglu.w3"}) {
                names.add(h + p + ".weight");
            }
        }
        names.add("transformer.ln_f.weight");
        return names;
    }

    /** Tensor {@code name} as fp32; rows 0 means a vector of {@code cols}. */
    public float[] read(String name, int rows, int cols) throws IOException {
        TorchTensor t = model.get(name);
        if (t == null) {
            throw new IOException(archive.file() + ": tensor " + name + " is missing from the lit-gpt state dict");
        }
        long[] expected = rows == 0 ? new long[]{cols} : new long[]{rows, cols};
        if (!java.util.Arrays.equals(t.size(), expected)) {
            throw new IOException(archive.file() + ": tensor " + name + " has shape " + t.shape() + ", expected "
                    + java.util.Arrays.toString(expected) + " for the model shape given");
        }
        float[] values = new float[Math.toIntExact(t.elements())];
        archive.readInto(name, t, values, 0);
        return values;
    }

    /** lit-gpt's per-group [q_per_kv q heads, k head, v head] rows into our [all q | all k | all v]. */
    public static float[] ungroupQkv(float[] grouped, LlamaConfig c) {
        int hd = c.headSize(), dim = c.dim(), qPerKv = c.heads() / c.kvHeads();
        int qRows = c.heads() * hd, kvRows = c.kvHeads() * hd;
        float[] ours = new float[grouped.length];
        int src = 0;
        for (int g = 0; g < c.kvHeads(); g++) {
            int q = qPerKv * hd * dim;
            System.arraycopy(grouped, src, ours, g * qPerKv * hd * dim, q);
            src += q;
            System.arraycopy(grouped, src, ours, (qRows + g * hd) * dim, hd * dim);
            src += hd * dim;
            System.arraycopy(grouped, src, ours, (qRows + kvRows + g * hd) * dim, hd * dim);
            src += hd * dim;
        }
        return ours;
    }

    private static void copy(LlamaModel target, String parameter, float[][] parts) {
        float[] whole = parts.length == 1 ? parts[0] : new float[parts[0].length + parts[1].length];
        if (parts.length == 2) {
            System.arraycopy(parts[0], 0, whole, 0, parts[0].length);
            System.arraycopy(parts[1], 0, whole, parts[0].length, parts[1].length);
        }
        target.backend().upload(target.parameter(parameter), whole, 0, whole.length);
    }

    @Override
    public void close() throws IOException {
        archive.close();
    }
}
