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

    /** Reads every weight into {@code model}, one parameter at a time, after {@link #requireShape}. */
    public void loadWeights(LlamaModel target) throws IOException {
        requireShape(target.config());
        for (ParameterLayout.Entry e : target.layout().stored()) {
            float[] values = assemble(target.config(), e.name(), this::read);
            target.backend().upload(target.parameter(e.name()), values, 0, values.length);
        }
    }

    /**
     * The state dict holds exactly the tensors of shape {@code c}, each with its size: checked on
     * the pickle alone, before a model is built, so a wrong --model-config is named rather than
     * loaded as part of a model. With tied embeddings a stored lm_head is allowed (lit-gpt keeps
     * both names) and not read.
     */
    public void requireShape(LlamaConfig c) throws IOException {
        int qRows = c.heads() * c.headSize(), kvRows = c.kvHeads() * c.headSize();
        java.util.Set<String> expected = new java.util.HashSet<>();
        for (String name : parameterNames(c)) {
            expected.add(name);
            String part = name.startsWith("transformer.h.") ? name.substring(name.indexOf('.', "transformer.h.".length()) + 1) : name;
            long[] shape = switch (part) {
                case "transformer.wte.weight", "lm_head.weight" -> new long[]{c.vocabSize(), c.dim()};
                case "transformer.ln_f.weight", "norm_1.weight", "norm_2.weight" -> new long[]{c.dim()};
                case "attn.attn.weight" -> new long[]{qRows + 2L * kvRows, c.dim()};
                case "attn.proj.weight" -> new long[]{c.dim(), qRows};
                case "mlp.swiglu.w1.weight", "mlp.swiglu.w2.weight" -> new long[]{c.intermediate(), c.dim()};
                case "mlp.swiglu.w3.weight" -> new long[]{c.dim(), c.intermediate()};
                default -> throw new IllegalStateException("no shape for lit-gpt tensor " + name);
            };
            TorchTensor t = model.get(name);
            if (t == null) {
                throw new IOException(archive.file() + ": tensor " + name + " is missing from the lit-gpt state dict");
            }
            if (!java.util.Arrays.equals(t.size(), shape)) {
                throw new IOException(archive.file() + ": tensor " + name + " has shape " + t.shape() + ", expected "
                        + java.util.Arrays.toString(shape) + " for the model shape given (" + c.describe() + ")");
            }
        }
        for (String name : new java.util.TreeSet<>(model.keySet())) {
            if (!expected.contains(name) && !(c.tieEmbeddings() && name.equals("lm_head.weight"))) {
                throw new IOException(archive.file() + ": tensor " + name + " is not part of the model shape given ("
                        + c.describe() + "); the shape and the checkpoint disagree");
            }
        }
    }

    /** Reads one lit-gpt tensor by name, checking it has rows x cols values (rows 0: a vector). */
    @FunctionalInterface
    public interface Reader {
        float[] read(String litName, int rows, int cols) throws IOException;
    }

    /**
     * Our parameter {@code ours} from the lit-gpt tensors {@code read} gives: the weights, or
     * AdamW's moments, which have the same shapes and layout.
     */
    public static float[] assemble(LlamaConfig c, String ours, Reader read) throws IOException {
        int qRows = c.heads() * c.headSize(), kvRows = c.kvHeads() * c.headSize();
        return switch (ours) {
            case "embed" -> read.read("transformer.wte.weight", c.vocabSize(), c.dim());
            case "final_norm" -> read.read("transformer.ln_f.weight", 0, c.dim());
            case "lm_head" -> read.read("lm_head.weight", c.vocabSize(), c.dim());
            default -> {
                String[] parts = ours.split("\\.", 3); // layers.N.name
                if (parts.length != 3 || !parts[0].equals("layers")) {
                    throw new IllegalArgumentException("no lit-gpt tensor for parameter " + ours);
                }
                String h = "transformer.h." + parts[1] + ".";
                yield switch (parts[2]) {
                    case "attn_norm" -> read.read(h + "norm_1.weight", 0, c.dim());
                    case "qkv" -> ungroupQkv(read.read(h + "attn.attn.weight", qRows + 2 * kvRows, c.dim()), c);
                    case "attn_out" -> read.read(h + "attn.proj.weight", c.dim(), qRows);
                    case "mlp_norm" -> read.read(h + "norm_2.weight", 0, c.dim());
                    case "gate_up" -> concat(read.read(h + "mlp.swiglu.w1.weight", c.intermediate(), c.dim()),
                            read.read(h + "mlp.swiglu.w2.weight", c.intermediate(), c.dim()));
                    case "down" -> read.read(h + "mlp.swiglu.w3.weight", c.dim(), c.intermediate());
                    default -> throw new IllegalArgumentException("no lit-gpt tensor for parameter " + ours);
                };
            }
        };
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
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

    /** Tensor {@code name} of the model state dict as fp32; rows 0 means a vector of {@code cols}. */
    public float[] read(String name, int rows, int cols) throws IOException {
        return read(model.get(name), name, "the lit-gpt state dict", rows, cols);
    }

    /** A one-value tensor (an optimizer's step count) as a number. */
    public double scalar(TorchTensor t, String name) throws IOException {
        if (t.elements() != 1) {
            throw new IOException(archive.file() + ": " + name + " has shape " + t.shape() + ", expected one value");
        }
        float[] value = new float[1];
        archive.readInto(name, t, value, 0);
        return value[0];
    }

    /** A tensor found elsewhere in the file (an optimizer moment), checked and read as the weights are. */
    public float[] read(TorchTensor t, String name, String within, int rows, int cols) throws IOException {
        if (t == null) {
            throw new IOException(archive.file() + ": tensor " + name + " is missing from " + within);
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

    @Override
    public void close() throws IOException {
        archive.close();
    }
}
