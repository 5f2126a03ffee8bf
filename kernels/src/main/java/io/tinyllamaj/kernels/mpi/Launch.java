package io.tinyllamaj.kernels.mpi;

import java.util.Map;

/**
 * How this process was started, read from the launcher's environment variables before MPI
 * starts: Open MPI's {@code mpirun}, Slurm's {@code srun} (with or without PMIx), a PMIx
 * launcher alone, or none (a world of one). Rank, world size and local rank come from the
 * same launcher, so the GPU a rank drives matches the place it was given.
 *
 * <p>Slurm's batch script also carries {@code SLURM_PROCID} and {@code SLURM_NTASKS} (for
 * the whole allocation) without being a rank of anything; only a job step started by
 * {@code srun} sets {@code SLURM_STEP_NUM_TASKS}, so that variable decides.
 *
 * @param launcher   who started the process
 * @param rank       this process's rank in the world
 * @param worldSize  the ranks the launcher started; 0 when it does not say (PMIx alone)
 * @param localRank  the rank among those on this host; -1 when the launcher does not say
 * @param slurmJob   the Slurm job id, or null outside Slurm
 * @param pmix       whether a PMIx server serves this process (what lets Open MPI form one world under srun)
 */
public record Launch(Launcher launcher, int rank, int worldSize, int localRank, String slurmJob, boolean pmix) {

    public enum Launcher {
        NONE("single process"), OPEN_MPI("mpirun (Open MPI)"), SLURM("srun (Slurm)"), PMIX("PMIx launcher");

        private final String label;

        Launcher(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }

    /** This process's launch. */
    public static Launch detect() {
        return from(System.getenv());
    }

    /** The launch an environment describes; a variable that is present but not a number is refused in one line. */
    public static Launch from(Map<String, String> env) {
        String job = blankToNull(env.get("SLURM_JOB_ID"));
        boolean pmix = present(env, "PMIX_RANK");
        if (present(env, "OMPI_COMM_WORLD_SIZE")) {
            return checked(new Launch(Launcher.OPEN_MPI, integer(env, "OMPI_COMM_WORLD_RANK", 0),
                    integer(env, "OMPI_COMM_WORLD_SIZE", 1), integer(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0), job, pmix));
        }
        if (present(env, "SLURM_STEP_NUM_TASKS") && present(env, "SLURM_PROCID")) {
            Launch launch = new Launch(Launcher.SLURM, integer(env, "SLURM_PROCID", 0), integer(env, "SLURM_STEP_NUM_TASKS", 1),
                    integer(env, "SLURM_LOCALID", 0), job, pmix);
            if (pmix && integer(env, "PMIX_RANK", 0) != launch.rank()) {
                throw new IllegalArgumentException("PMIX_RANK is " + env.get("PMIX_RANK") + " but SLURM_PROCID is "
                        + env.get("SLURM_PROCID") + ": two launchers disagree about this rank");
            }
            return checked(launch);
        }
        if (pmix) {
            // PMIx hands out the rank in the environment; the size only through PMIx_Get, checked after MPI_Init
            return checked(new Launch(Launcher.PMIX, integer(env, "PMIX_RANK", 0), 0, -1, job, true));
        }
        return new Launch(Launcher.NONE, 0, 1, 0, job, false);
    }

    /** More than one process: MPI must start. */
    public boolean distributed() {
        return launcher != Launcher.NONE && worldSize != 1;
    }

    /** The run's first line: who started it and where this rank sits. */
    public String describe() {
        StringBuilder line = new StringBuilder("launch: ").append(launcher.label());
        if (launcher == Launcher.SLURM && pmix) {
            line.append(" with PMIx");
        }
        if (slurmJob != null) {
            line.append(launcher == Launcher.NONE ? ", inside Slurm job " + slurmJob + " but not under srun" : ", Slurm job " + slurmJob);
        }
        if (launcher == Launcher.NONE) {
            return line.append(": 1 rank").toString();
        }
        line.append(": rank ").append(rank).append(" of ").append(worldSize == 0 ? "(size from PMIx)" : worldSize);
        if (localRank >= 0) {
            line.append(", local rank ").append(localRank);
        }
        return line.toString();
    }

    private static Launch checked(Launch launch) {
        if (launch.worldSize() < 0 || launch.worldSize() == 0 && launch.launcher() != Launcher.PMIX) {
            throw new IllegalArgumentException(launch.launcher().label() + " announced a world of " + launch.worldSize() + " ranks");
        }
        if (launch.rank() < 0 || launch.worldSize() > 0 && launch.rank() >= launch.worldSize()) {
            throw new IllegalArgumentException(launch.launcher().label() + " announced rank " + launch.rank() + " of "
                    + launch.worldSize() + " ranks");
        }
        return launch;
    }

    private static boolean present(Map<String, String> env, String name) {
        return blankToNull(env.get(name)) != null;
    }

    private static String blankToNull(String value) {
        return value == null || value.isBlank() ? null : value.trim();
    }

    private static int integer(Map<String, String> env, String name, int fallback) {
        String value = blankToNull(env.get(name));
        if (value == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + name + " is '" + env.get(name) + "', not a number");
        }
    }
}
