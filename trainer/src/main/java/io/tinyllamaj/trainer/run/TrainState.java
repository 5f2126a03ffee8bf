package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.trainer.checkpoint.CheckpointJson;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A checkpoint's state.json: the loop's position, the data position, the run's layout and the
 * config the checkpoint is valid for. The one description of the file: {@link #toJson} writes
 * it and {@link #read} reads it back strictly, so a missing or mistyped key is refused naming
 * the file and the key before anything is loaded, never read as 0.
 *
 * @param worldSize    ranks of the saving run; empty for checkpoints older than the record of it
 * @param accumulation micro-batches per step of the saving run; empty likewise
 * @param strategy     ddp, fsdp or hybrid; empty likewise
 * @param fingerprint  the config values the checkpoint is only valid for ({@link Trainer#fingerprint})
 * @param config       the full effective config, as {@code ConfigLoader.toTree} gives it (for people; resume reads the fingerprint)
 * @param spikes       the loss-spike guard's window and counters; empty ({@link SpikeGuard.State#EMPTY}) for
 *                     checkpoints older than the guard, whose window then fills again from the resumed steps
 * @param lossWindow   the losses since the last metrics record; empty for checkpoints older than the record of
 *                     it, whose first record after the resume then averages the resumed steps alone
 */
public record TrainState(long step, long updates, long tokensSeen, long skippedSteps, int consecutiveSkipped,
                         Map<String, Long> tokensPerSource, MixtureSampler.State sampler, OptionalInt worldSize,
                         OptionalInt accumulation, Optional<String> strategy, String configHash,
                         Map<String, String> fingerprint, LlamaConfig model, JsonNode config,
                         SpikeGuard.State spikes, LossWindow lossWindow) {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The maps keep their order: it is the order of their keys in the file. */
    public TrainState {
        tokensPerSource = Collections.unmodifiableMap(new LinkedHashMap<>(tokensPerSource));
        fingerprint = Collections.unmodifiableMap(new LinkedHashMap<>(fingerprint));
    }

    /** Reads {@code <checkpoint>/state.json}, refusing a missing or mistyped key by file and key. */
    public static TrainState read(Path checkpoint) throws IOException {
        CheckpointJson state = CheckpointStore.readState(checkpoint);
        CheckpointStore.requireStepOfDirectory(checkpoint, state);
        return new TrainState(state.count("step"), state.count("updates"), state.count("tokens_seen"),
                state.count("skipped_steps"), state.smallCount("consecutive_skipped"),
                counts(state.object("tokens_per_source")), state.value("sampler", MixtureSampler.State.class, "a data position"),
                optionalCount(state, "world_size"), optionalCount(state, "accumulation"),
                state.has("strategy") ? Optional.of(state.text("strategy")) : Optional.empty(), state.text("config_hash"),
                texts(state.object("fingerprint")), state.value("model", LlamaConfig.class, "a model shape"),
                state.object("config").node(),
                state.has("spike_guard") ? state.value("spike_guard", SpikeGuard.State.class, "a loss-spike window")
                        : SpikeGuard.State.EMPTY,
                state.has("loss_window") ? state.value("loss_window", LossWindow.class, "a loss window") : LossWindow.EMPTY);
    }

    /**
     * state.json's keys but {@code step}, in the order every checkpoint has had them: the store
     * adds format, version and step after them, as it does to each file it lists.
     */
    public ObjectNode toJson() {
        ObjectNode state = JSON.createObjectNode();
        state.put("updates", updates);
        state.put("tokens_seen", tokensSeen);
        state.put("skipped_steps", skippedSteps);
        state.put("consecutive_skipped", consecutiveSkipped);
        state.set("tokens_per_source", JSON.valueToTree(tokensPerSource));
        state.set("sampler", JSON.valueToTree(sampler));
        worldSize.ifPresent(n -> state.put("world_size", n));
        accumulation.ifPresent(n -> state.put("accumulation", n));
        strategy.ifPresent(name -> state.put("strategy", name));
        state.put("config_hash", configHash);
        state.set("fingerprint", JSON.valueToTree(fingerprint));
        state.set("model", JSON.valueToTree(model));
        state.set("config", config.deepCopy());
        state.set("spike_guard", JSON.valueToTree(spikes));
        state.set("loss_window", JSON.valueToTree(lossWindow));
        return state;
    }

    /** Refuses a config that differs where {@code checkpoint} is only valid for the saved values, listing each difference. */
    void requireCompatible(Path checkpoint, TrainingConfig config, RunShape shape) {
        List<String> changes = new ArrayList<>();
        Trainer.fingerprint(config, shape).forEach((key, now) -> {
            String before = fingerprint.get(key);
            if (!now.equals(before)) {
                changes.add(key + " was " + before + ", now " + now);
            }
        });
        if (!changes.isEmpty()) {
            throw new IllegalArgumentException("cannot resume from " + checkpoint + ": the config changed where it must not: "
                    + String.join("; ", changes));
        }
    }

    private static OptionalInt optionalCount(CheckpointJson state, String key) throws IOException {
        return state.has(key) ? OptionalInt.of(state.smallCount(key)) : OptionalInt.empty();
    }

    private static Map<String, Long> counts(CheckpointJson object) throws IOException {
        Map<String, Long> counts = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : object.node().properties()) {
            counts.put(entry.getKey(), object.count(entry.getKey()));
        }
        return counts;
    }

    private static Map<String, String> texts(CheckpointJson object) throws IOException {
        Map<String, String> texts = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : object.node().properties()) {
            texts.put(entry.getKey(), object.text(entry.getKey()));
        }
        return texts;
    }
}
