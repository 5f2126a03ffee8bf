package io.tinyllamaj.data.shards;

import io.tinyllamaj.data.corpus.ReadReport;

/** What a {@code prepare} run produced, for the closing summary. */
public record PrepareResult(ShardManifest manifest, ReadReport report, int shardsReused, long textBytes,
                            double seconds) {
}
