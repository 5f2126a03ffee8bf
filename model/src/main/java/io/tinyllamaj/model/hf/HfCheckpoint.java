package io.tinyllamaj.model.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.MemoryBudget;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A Hugging Face Llama checkpoint directory: {@code config.json} plus {@code model.safetensors}
 * or shards {@code model-0000x-of-0000y.safetensors} with {@code model.safetensors.index.json};
 * or, where no safetensors are, PyTorch's {@code pytorch_model.bin} or its shards with
 * {@code pytorch_model.bin.index.json} (read by {@link io.tinyllamaj.model.torch.StateDictPickle},
 * which never executes the pickle).
 */
public final class HfCheckpoint {

    public static final String CONFIG = "config.json";
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";
    public static final String TORCH_SINGLE = "pytorch_model.bin";
    public static final String TORCH_INDEX = "pytorch_model.bin.index.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private HfCheckpoint() {
    }

    /** Reads {@code config.json}, naming the file and key on any problem. */
    public static LlamaConfig readConfig(Path dir) throws IOException {
        Path file = dir.resolve(CONFIG);
        if (!Files.isDirectory(dir)) {
            throw new IOException(dir + ": checkpoint directory not found");
        }
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": missing (a Hugging Face checkpoint directory needs config.json)");
        }
        return readConfigFile(file);
    }

    /** A Hugging Face config.json on its own (the shape of a checkpoint that does not carry one). */
    public static LlamaConfig readConfigFile(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": file not found");
        }
        JsonNode node;
        try {
            node = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IOException(file + ": not valid JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        if (node == null || !node.isObject()) {
            throw new IOException(file + ": not a JSON object (a Hugging Face config.json is one)");
        }
        String type = node.path("model_type").asText("llama");
        if (!type.equals("llama")) {
            throw new IOException(file + ": model_type is '" + type + "', only 'llama' is supported");
        }
        String activation = node.path("hidden_act").asText("silu");
        if (!activation.equals("silu")) {
            throw new IOException(file + ": hidden_act is '" + activation + "', only 'silu' (SwiGLU) is supported");
        }
        if (node.hasNonNull("rope_scaling")) {
            throw new IOException(file + ": rope_scaling is not supported");
        }
        if (node.path("attention_bias").asBoolean(false) || node.path("mlp_bias").asBoolean(false)) {
            throw new IOException(file + ": attention or MLP biases are not supported");
        }
        int dim = integer(node, file, "hidden_size");
        int heads = integer(node, file, "num_attention_heads");
        if (node.hasNonNull("head_dim") && (long) integer(node, file, "head_dim") * heads != dim) {
            throw new IOException(file + ": head_dim " + node.get("head_dim") + " times num_attention_heads "
                    + heads + " differs from hidden_size " + dim + " (not supported)");
        }
        int vocab = integer(node, file, "vocab_size"), layers = integer(node, file, "num_hidden_layers");
        int kvHeads = node.hasNonNull("num_key_value_heads") ? integer(node, file, "num_key_value_heads") : heads;
        int intermediate = integer(node, file, "intermediate_size");
        float normEps = (float) number(node, file, "rms_norm_eps", 1e-6);
        float ropeTheta = (float) number(node, file, "rope_theta", 10000);
        int maxSeqLen = node.hasNonNull("max_position_embeddings") ? integer(node, file, "max_position_embeddings") : 2048;
        boolean tied = flag(node, file, "tie_word_embeddings");
        try {
            return new LlamaConfig("custom", vocab, dim, layers, heads, kvHeads, intermediate, normEps, ropeTheta, maxSeqLen, tied);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage());
        }
    }

    /**
     * A shape value: a whole number from 1 to 2^31 - 1 (1e8 is one; 2.5, "16" and 2^40 are not),
     * checked before any arithmetic so that a value cannot wrap into a plausible one.
     */
    private static int integer(JsonNode config, Path file, String key) throws IOException {
        JsonNode value = config.get(key);
        if (value == null || value.isNull()) {
            throw new IOException(file + ": missing '" + key + "'");
        }
        double number = value.isNumber() ? value.doubleValue() : Double.NaN;
        if (!value.isIntegralNumber() && number != Math.rint(number)) {
            throw new IOException(file + ": " + key + " " + value + " is not an integer");
        }
        if (!(number >= 1 && number <= Integer.MAX_VALUE)) {
            throw new IOException(file + ": " + key + " " + value + " is out of range (1 to " + Integer.MAX_VALUE + ")");
        }
        return (int) number;
    }

    private static double number(JsonNode config, Path file, String key, double fallback) throws IOException {
        JsonNode value = config.get(key);
        if (value == null || value.isNull()) {
            return fallback;
        }
        if (!value.isNumber()) {
            throw new IOException(file + ": " + key + " " + value + " is not a number");
        }
        return value.doubleValue();
    }

    private static boolean flag(JsonNode config, Path file, String key) throws IOException {
        JsonNode value = config.get(key);
        if (value == null || value.isNull()) {
            return false;
        }
        if (!value.isBoolean()) {
            throw new IOException(file + ": " + key + " " + value + " is not true or false");
        }
        return value.booleanValue();
    }

    /**
     * Loads a checkpoint onto {@code backend}. The shape config.json claims is checked against
     * the weight files' sizes and the backend's memory before anything is built for it.
     */
    public static LlamaModel load(Path dir, Backend backend) throws IOException {
        LlamaConfig config = readConfig(dir);
        Map<String, Path> files = weightFiles(dir);
        requireWeightsFor(dir, config, files.values());
        requireNoStrayTensors(config, files);
        LlamaModel model = new LlamaModel(backend, config);
        readWeights(dir, files, model);
        return model;
    }

    /** Reads every tensor of the checkpoint in {@code dir} into {@code model}'s parameters. */
    public static void loadWeights(Path dir, LlamaModel model) throws IOException {
        Map<String, Path> files = weightFiles(dir);
        requireNoStrayTensors(model.config(), files);
        readWeights(dir, files, model);
    }

    /**
     * Every tensor in the weight files must be one the shape reads: a config.json with fewer
     * layers than the weights would otherwise load part of a model without a word. Allowed
     * besides: RoPE's inv_freq buffers (transformers before 4.31 saved them) and, with tied
     * embeddings, an lm_head stored beside the embedding (not read).
     */
    private static void requireNoStrayTensors(LlamaConfig config, Map<String, Path> files) throws IOException {
        Set<String> read = new HashSet<>();
        for (HfTensorMap.Piece piece : HfTensorMap.pieces(config)) {
            read.add(piece.hfName());
        }
        for (String name : new TreeSet<>(files.keySet())) {
            boolean allowed = read.contains(name) || name.matches("model\\.layers\\.\\d+\\.self_attn\\.rotary_emb\\.inv_freq")
                    || (config.tieEmbeddings() && name.equals("lm_head.weight"));
            if (!allowed) {
                throw new IOException(files.get(name) + ": tensor " + name + " is not part of the shape " + CONFIG + " gives ("
                        + config.describe() + "); the config and the weights disagree");
            }
        }
    }

    /** Every value takes at least 2 bytes (bf16 or f16) in the files. */
    private static void requireWeightsFor(Path dir, LlamaConfig config, Collection<Path> files) throws IOException {
        long held = 0;
        for (Path file : new HashSet<>(files)) {
            held += Files.size(file);
        }
        double needed = 2.0 * config.parameterCount();
        if (needed > held) {
            throw new IOException(String.format(Locale.ROOT, "%s: the shape (%s) has %,d parameters, at least %s in 16 bits, "
                            + "but the weight files hold %s", dir.resolve(CONFIG), config.describe(), config.parameterCount(),
                    MemoryBudget.format(needed), MemoryBudget.format(held)));
        }
    }

    /** One parameter at a time (its Hugging Face pieces are consecutive): no second copy of the whole model. */
    private static void readWeights(Path dir, Map<String, Path> files, LlamaModel model) throws IOException {
        Map<String, List<HfTensorMap.Piece>> byParameter = new LinkedHashMap<>();
        for (HfTensorMap.Piece piece : HfTensorMap.pieces(model.config())) {
            byParameter.computeIfAbsent(piece.ours(), k -> new ArrayList<>()).add(piece);
        }
        Map<Path, WeightFile> open = new HashMap<>();
        try {
            for (Map.Entry<String, List<HfTensorMap.Piece>> parameter : byParameter.entrySet()) {
                float[] values = new float[Math.toIntExact(model.layout().get(parameter.getKey()).size())];
                for (HfTensorMap.Piece piece : parameter.getValue()) {
                    Path file = files.get(piece.hfName());
                    if (file == null) {
                        throw new IOException(dir + ": tensor " + piece.hfName() + " is missing from the checkpoint");
                    }
                    WeightFile tensors = open.get(file);
                    if (tensors == null) {
                        tensors = openWeights(file);
                        open.put(file, tensors);
                    }
                    tensors.readInto(piece.hfName(), piece.hfShape(), values, piece.rowOffset() * piece.cols());
                }
                model.backend().upload(model.parameter(parameter.getKey()), values, 0, values.length);
            }
        } finally {
            for (WeightFile f : open.values()) {
                f.close();
            }
        }
    }

    private static WeightFile openWeights(Path file) throws IOException {
        return file.getFileName().toString().endsWith(".safetensors") ? SafeTensors.open(file) : PyTorchWeights.open(file);
    }

    /** Safetensors first, as transformers prefers them; PyTorch files where a directory has only those. */
    private static Map<String, Path> weightFiles(Path dir) throws IOException {
        boolean safetensors = Files.isRegularFile(dir.resolve(INDEX)) || Files.isRegularFile(dir.resolve(SINGLE));
        boolean torch = Files.isRegularFile(dir.resolve(TORCH_INDEX)) || Files.isRegularFile(dir.resolve(TORCH_SINGLE));
        return !safetensors && torch ? weightFiles(dir, TORCH_INDEX, TORCH_SINGLE) : weightFiles(dir, INDEX, SINGLE);
    }

    private static Map<String, Path> weightFiles(Path dir, String indexName, String singleName) throws IOException {
        Path index = dir.resolve(indexName);
        Map<String, Path> files = new HashMap<>();
        if (Files.isRegularFile(index)) {
            JsonNode map;
            try {
                map = JSON.readTree(index.toFile()).path("weight_map");
            } catch (IOException e) {
                throw new IOException(index + ": not valid JSON");
            }
            if (!map.isObject()) {
                throw new IOException(index + ": has no weight_map");
            }
            for (var it = map.fields(); it.hasNext(); ) {
                var e = it.next();
                Path shard = shardPath(dir, index, e.getKey(), e.getValue());
                if (!Files.isRegularFile(shard)) {
                    throw new IOException(shard + ": missing (named by " + index.getFileName() + " for " + e.getKey() + ")");
                }
                files.put(e.getKey(), shard);
            }
            return files;
        }
        Path single = dir.resolve(singleName);
        if (!Files.isRegularFile(single)) {
            throw new IOException(dir + ": no " + SINGLE + ", " + INDEX + ", " + TORCH_SINGLE + " or " + TORCH_INDEX
                    + " (not a Hugging Face checkpoint)");
        }
        try (WeightFile tensors = openWeights(single)) {
            for (String name : tensors.names()) {
                files.put(name, single);
            }
        }
        return files;
    }

    /**
     * The file a weight_map entry names, which must lie inside the checkpoint directory, as a
     * shard manifest's must. Judged on the names alone: a Hugging Face cache's snapshot files are
     * symbolic links into its blob store.
     */
    private static Path shardPath(Path dir, Path index, String tensor, JsonNode name) throws IOException {
        String entry = index + ": weight_map entry " + tensor + " names " + name;
        if (!name.isTextual()) {
            throw new IOException(entry + ", not a file name");
        }
        Path root = dir.toAbsolutePath().normalize(), shard;
        try {
            shard = root.resolve(name.asText()).normalize();
        } catch (InvalidPathException e) {
            throw new IOException(entry + ", not a valid file name");
        }
        if (Path.of(name.asText()).isAbsolute() || !shard.startsWith(root) || shard.equals(root)) {
            throw new IOException(index + ": weight_map entry " + tensor + " names " + name.asText() + ", outside the checkpoint directory");
        }
        return shard;
    }

    /** Whether {@code dir} holds a Hugging Face checkpoint: config.json with safetensors or PyTorch weights or their index. */
    public static boolean isCheckpoint(Path dir) {
        return Files.isRegularFile(dir.resolve(CONFIG))
                && (Files.isRegularFile(dir.resolve(SINGLE)) || Files.isRegularFile(dir.resolve(INDEX))
                || Files.isRegularFile(dir.resolve(TORCH_SINGLE)) || Files.isRegularFile(dir.resolve(TORCH_INDEX)));
    }
    /**
     * Writes {@code model} as a Hugging Face checkpoint in {@code dtype}, split into shards of at
     * most {@code maxShardBytes} (one {@code model.safetensors} when it fits).
     */
    public static void save(LlamaModel model, Path dir, SafeTensors.DType dtype, long maxShardBytes) throws IOException {
        DurableFiles.createDirectories(dir);
        LlamaConfig c = model.config();
        List<List<SafeTensors.Entry>> shards = new ArrayList<>();
        List<SafeTensors.Entry> current = new ArrayList<>();
        long currentBytes = 0, totalBytes = 0;
        Map<String, float[]> downloaded = new HashMap<>();
        for (HfTensorMap.Piece piece : HfTensorMap.pieces(c)) {
            float[] values = downloaded.computeIfAbsent(piece.ours(), k -> model.backend().download(model.parameter(k)));
            long bytes = (long) piece.rows() * piece.cols() * dtype.bytes;
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(new SafeTensors.Entry(piece.hfName(), piece.hfShape(), values, piece.rowOffset() * piece.cols(), dtype));
            currentBytes += bytes;
            totalBytes += bytes;
        }
        shards.add(current);
        Map<String, String> metadata = Map.of("format", "pt");
        Set<Path> written = new HashSet<>();
        if (shards.size() == 1) {
            // an index left by an earlier sharded export would win over the new file when read: gone first
            DurableFiles.delete(dir.resolve(INDEX));
            SafeTensors.write(dir.resolve(SINGLE), shards.getFirst(), metadata);
            written.add(dir.resolve(SINGLE));
        } else {
            Map<String, String> weightMap = new TreeMap<>();
            for (int s = 0; s < shards.size(); s++) {
                String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
                SafeTensors.write(dir.resolve(name), shards.get(s), metadata);
                written.add(dir.resolve(name));
                shards.get(s).forEach(e -> weightMap.put(e.name(), name));
            }
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", totalBytes);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            DurableFiles.SYSTEM.replace(dir.resolve(INDEX), JSON.writeValueAsBytes(index));
        }
        DurableFiles.SYSTEM.replace(dir.resolve(CONFIG), JSON.writeValueAsBytes(configJson(c, dtype)));
        removeStaleWeights(dir, written);
    }

    /**
     * Safetensors weight files of an earlier export into the same directory that this one did not
     * write (shards of another count, a single file where shards now are): left, they would be
     * read beside the new config or mistaken for part of it.
     */
    private static void removeStaleWeights(Path dir, Set<Path> written) throws IOException {
        try (var files = Files.list(dir)) {
            for (Path file : (Iterable<Path>) files::iterator) {
                String name = file.getFileName().toString();
                if ((name.equals(SINGLE) || name.matches("model-\\d{5}-of-\\d{5}\\.safetensors")) && !written.contains(file)) {
                    DurableFiles.delete(file);
                }
            }
        }
    }

    private static Map<String, Object> configJson(LlamaConfig c, SafeTensors.DType dtype) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("architectures", List.of("LlamaForCausalLM"));
        m.put("model_type", "llama");
        m.put("hidden_act", "silu");
        m.put("vocab_size", c.vocabSize());
        m.put("hidden_size", c.dim());
        m.put("intermediate_size", c.intermediate());
        m.put("num_hidden_layers", c.layers());
        m.put("num_attention_heads", c.heads());
        m.put("num_key_value_heads", c.kvHeads());
        m.put("head_dim", c.headSize());
        m.put("rms_norm_eps", (double) c.normEps());
        m.put("rope_theta", (double) c.ropeTheta());
        m.put("max_position_embeddings", c.maxSeqLen());
        m.put("tie_word_embeddings", c.tieEmbeddings());
        m.put("attention_bias", false);
        m.put("mlp_bias", false);
        m.put("bos_token_id", 1);
        m.put("eos_token_id", 2);
        m.put("torch_dtype", switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
        });
        return m;
    }
}
