package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.kernels.mpi.Mpi;
import io.tinyllamaj.kernels.nccl.Nccl;

import java.io.PrintStream;
import java.time.Duration;

/**
 * Where a strategy name becomes a {@link Strategy}. A process not started by a launcher
 * ({@link Launch}: mpirun, srun, PMIx) is a world of one and never loads MPI; otherwise (even
 * with one rank, so that a world of one exercises the same calls) MPI starts here, CPU tensors
 * reduce over MPI and CUDA tensors over NCCL (bootstrapped over MPI) or, with transport mpi,
 * over MPI through host memory; every collective runs under a {@link Watchdog}.
 */
public final class Distributed {

    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

    private Distributed() {
    }

    /**
     * @param strategy     none, ddp, fsdp or hybrid
     * @param worldSize    the configured world size; it must equal the number of ranks the launcher started
     * @param ranksPerNode hybrid only: the ranks of one shard group (one node)
     * @param timeout      how long one collective may take before the watchdog ends the process
     * @param backend      decides the transport: NCCL for cuda, MPI otherwise
     */
    public static Strategy open(String strategy, int worldSize, int ranksPerNode, Duration timeout, Backend backend,
                                PrintStream err) {
        return open(strategy, worldSize, ranksPerNode, true, "fp32", defaultTransport(backend), timeout, backend, err);
    }

    /** NCCL for CUDA tensors, MPI for any other. */
    private static String defaultTransport(Backend backend) {
        return backend instanceof CudaBackend ? "nccl" : "mpi";
    }

    /**
     * @param reshardAfterForward fsdp and hybrid: gather each unit again for the backward (true)
     *                            or keep the gathered units from the forward (false)
     * @param reduceDtype         fsdp and hybrid: fp32, or bf16 (values rounded before the sum: in place on CPU ranks,
     *                            into a bf16 copy that the reduction moves on GPUs)
     * @param transport           nccl (CUDA tensors; ConfigLoader refuses it elsewhere) or mpi (any tensors; CUDA ones
     *                            staged through host memory)
     */
    public static Strategy open(String strategy, int worldSize, int ranksPerNode, boolean reshardAfterForward, String reduceDtype,
                                String transport, Duration timeout, Backend backend, PrintStream err) {
        Launch launch = Launch.detect();
        requireWorldSize(launch, worldSize);
        if (strategy.equals("none") && worldSize != 1) {
            throw new IllegalArgumentException("distributed.strategy none trains one rank; world size is " + worldSize);
        }
        Ranks ranks = launch.launcher() != Launch.Launcher.NONE ? connect(launch, worldSize, timeout, backend, transport, err)
                : Ranks.single();
        try {
            return create(strategy, ranks, ranksPerNode, options(reshardAfterForward, reduceDtype));
        } catch (RuntimeException e) {
            ranks.close();
            throw e;
        }
    }

    /** The configured world size against the launcher's; a PMIx launcher alone says its size only after MPI starts. */
    static void requireWorldSize(Launch launch, int worldSize) {
        if (launch.launcher() == Launch.Launcher.PMIX || launch.worldSize() == worldSize) {
            return;
        }
        String launcher = launch.launcher() == Launch.Launcher.SLURM ? "srun" : "mpirun";
        throw new IllegalArgumentException("distributed.world_size is " + worldSize + " but "
                + (launch.launcher() != Launch.Launcher.NONE ? launcher + " started " + launch.worldSize()
                + " ranks (leave distributed.world_size out, or set it to auto, to take " + launcher + "'s)"
                : "this process was not started by mpirun or srun (use: mpirun -np " + worldSize + " or srun -n " + worldSize
                + " tinyllama pretrain ...)"));
    }

    /**
     * After MPI_Init, the world MPI formed must be the one the launcher announced: an Open MPI
     * without PMIx support under srun makes every rank a world of one.
     */
    static void requireFormedWorld(Launch launch, int worldSize, int formed) {
        if (formed == worldSize) {
            return;
        }
        throw new IllegalArgumentException(launch.launcher().label() + " started " + worldSize + " ranks but MPI formed a world of "
                + formed + (launch.launcher() == Launch.Launcher.SLURM
                ? " (Open MPI joins srun's ranks through PMIx: use srun --mpi=pmix, see srun --mpi=list)"
                : " (is libmpi the launcher's own Open MPI?)"));
    }

    /** The strategy over already connected ranks (tests pass their own). */
    static Strategy create(String strategy, Ranks ranks, int ranksPerNode) {
        return create(strategy, ranks, ranksPerNode, Sharded.Options.DEFAULT);
    }

    static Sharded.Options options(boolean reshardAfterForward, String reduceDtype) {
        return switch (reduceDtype) {
            case "fp32" -> new Sharded.Options(reshardAfterForward, false);
            case "bf16" -> new Sharded.Options(reshardAfterForward, true);
            default -> throw new IllegalArgumentException("unknown distributed.reduce_dtype '" + reduceDtype + "' (expected fp32 or bf16)");
        };
    }

    static Strategy create(String strategy, Ranks ranks, int ranksPerNode, Sharded.Options options) {
        Collectives world = ranks.world();
        return switch (strategy) {
            case "none", "ddp" -> new DataParallel(ranks, strategy);
            case "fsdp" -> new Sharded(ranks, strategy, world, SingleRankCollectives.INSTANCE, options);
            case "hybrid" -> {
                if (ranksPerNode < 1 || world.size() % ranksPerNode != 0) {
                    throw new IllegalArgumentException("distributed.ranks_per_node " + ranksPerNode
                            + " must divide the world size " + world.size());
                }
                int node = world.rank() / ranksPerNode, local = world.rank() % ranksPerNode;
                Collectives shardGroup = ranksPerNode == 1 ? SingleRankCollectives.INSTANCE : ranks.split(node, local);
                Collectives replicaGroup = ranksPerNode == world.size() ? SingleRankCollectives.INSTANCE : ranks.split(local, node);
                yield new Sharded(ranks, strategy, shardGroup, replicaGroup, options);
            }
            default -> throw new IllegalArgumentException("unknown distributed.strategy '" + strategy
                    + "' (expected none, ddp, fsdp or hybrid)");
        };
    }

    private static Ranks connect(Launch launch, int worldSize, Duration timeout, Backend backend, String transport,
                                 PrintStream err) {
        Mpi mpi = Mpi.initialize();
        try {
            requireFormedWorld(launch, worldSize, mpi.size(mpi.world()));
        } catch (IllegalArgumentException e) {
            mpi.finish();
            throw e;
        }
        Watchdog watchdog = new Watchdog(mpi.rank(mpi.world()), timeout, err);
        MpiCollectives mpiWorld = new MpiCollectives(mpi, mpi.world(), false, backend, MpiCollectives.DEFAULT_CHUNK_FLOATS);
        Collectives world = transport.equals("nccl") && backend instanceof CudaBackend cuda
                ? new NcclCollectives(Nccl.load(), mpiWorld, cuda) : mpiWorld;
        return new Ranks(watchdog.watch(world, "world"), mpi, watchdog, err);
    }
}
