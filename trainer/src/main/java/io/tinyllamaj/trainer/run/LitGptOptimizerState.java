package io.tinyllamaj.trainer.run;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.hf.LitGptCheckpoint;
import io.tinyllamaj.model.torch.TorchTensor;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * AdamW's state in a lit-gpt checkpoint, per lit-gpt parameter name. torch's own optimizer
 * state dict keys it by parameter index (the order of param_groups' params, which is the
 * model's parameters() order); FSDP's full optimizer state dict keys it by parameter name.
 * Both are read; any other shape of it is refused naming the file.
 */
record LitGptOptimizerState(Map<String, Map<?, ?>> byName, OptionalLong updates) {

    static LitGptOptimizerState read(LitGptCheckpoint lit, LlamaConfig config) throws IOException {
        String where = lit.file() + ": optimizer";
        if (!(lit.top().get("optimizer") instanceof Map<?, ?> optimizer)) {
            throw new IOException(where + " state is absent or not a dict");
        }
        if (!(optimizer.get("state") instanceof Map<?, ?> state) || !(optimizer.get("param_groups") instanceof List<?> groups)) {
            throw new IOException(where + " has no 'state' dict and 'param_groups' list (not a torch optimizer state dict)");
        }
        List<Object> params = new ArrayList<>();
        for (Object group : groups) {
            if (!(group instanceof Map<?, ?> g) || !(g.get("params") instanceof List<?> p)) {
                throw new IOException(where + ": a param_groups entry has no 'params' list");
            }
            params.addAll(p);
        }
        List<String> names = LitGptCheckpoint.parameterNames(config);
        Map<String, Map<?, ?>> byName = new HashMap<>();
        long updates = -1;
        for (int i = 0; i < params.size(); i++) {
            Object id = params.get(i);
            String name;
            if (id instanceof String s) {
                name = s;
            } else if (id instanceof Long index && index == i && i < names.size()) {
                name = names.get(i);
            } else {
                throw new IOException(where + ": param_groups lists parameter " + id + " at position " + i
                        + "; expected names, or indices in the model's parameter order (0 to " + (names.size() - 1) + ")");
            }
            if (!names.contains(name)) {
                throw new IOException(where + ": param_groups names " + name + ", not a parameter of the model shape given");
            }
            if (state.get(id) instanceof Map<?, ?> s) {
                byName.put(name, s);
                if (s.get("step") instanceof TorchTensor t && t.elements() == 1) {
                    updates = Math.max(updates, (long) lit.scalar(t, "optimizer step of " + name));
                } else if (s.get("step") instanceof Long n) {
                    updates = Math.max(updates, n);
                }
            }
        }
        if (params.size() != names.size()) {
            throw new IOException(where + ": param_groups list " + params.size() + " parameters, the model shape has " + names.size());
        }
        return new LitGptOptimizerState(byName, updates < 0 ? OptionalLong.empty() : OptionalLong.of(updates));
    }

    /** Moment {@code key} (exp_avg or exp_avg_sq) of parameter {@code name}, or null where the state lacks it. */
    TorchTensor moment(String name, String key) {
        Map<?, ?> s = byName.get(name);
        return s != null && s.get(key) instanceof TorchTensor t ? t : null;
    }
}
