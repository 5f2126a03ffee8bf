package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.trainer.TestRuns;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * A one-node Slurm cluster on this host for the tests: slurmctld and slurmd in the foreground
 * as child processes, with a config, state and logs of their own under a temporary directory and
 * ports nobody else uses; munged (Slurm's authentication) is started if it is not running.
 * Debian's slurmctld, slurmd, slurm-client and munge packages provide the programs.
 */
final class LocalSlurm implements AutoCloseable {

    private static final List<String> PROGRAMS = List.of("slurmctld", "slurmd", "srun", "scancel", "sinfo", "munge");

    private final Path directory;
    private final List<Process> daemons = new ArrayList<>();
    private Process munged;

    private LocalSlurm(Path directory) {
        this.directory = directory;
    }

    /** Why a cluster cannot start here (programs missing, not root), or empty when it can. */
    static Optional<String> unavailable() {
        for (String program : PROGRAMS) {
            if (!TestRuns.onPath(program) && !Files.isExecutable(Path.of("/usr/sbin", program))) {
                return Optional.of(program + " not found (apt-get install slurmctld slurmd slurm-client munge, as .ci/run does)");
            }
        }
        if (!"root".equals(System.getProperty("user.name"))) {
            return Optional.of("slurmd runs jobs as their users and must start as root; the tests run as " + System.getProperty("user.name"));
        }
        return Optional.empty();
    }

    static LocalSlurm start(Path directory) throws Exception {
        LocalSlurm slurm = new LocalSlurm(directory);
        try {
            slurm.startDaemons();
        } catch (Exception | AssertionError e) {
            slurm.close();
            throw e;
        }
        return slurm;
    }

    private void startDaemons() throws Exception {
        if (run(List.of("munge", "-n")).exitCode != 0) {
            Path socketDir = Path.of("/run/munge");
            Files.createDirectories(socketDir);
            run(List.of("chown", "munge:munge", socketDir.toString()));
            munged = new ProcessBuilder("runuser", "-u", "munge", "--", sbin("munged"), "--foreground")
                    .redirectErrorStream(true).redirectOutput(directory.resolve("munged.log").toFile()).start();
            awaitTrue(() -> run(List.of("munge", "-n")).exitCode == 0, "munged to answer");
        }
        String host = InetAddress.getLocalHost().getHostName().split("\\.")[0];
        int cpus = Runtime.getRuntime().availableProcessors();
        int[] ports = freePorts();
        for (String sub : List.of("state", "spool")) {
            Files.createDirectories(directory.resolve(sub));
        }
        Files.writeString(conf(), String.join("\n",
                "ClusterName=tinyllamatest",
                "SlurmctldHost=" + host,
                "SlurmctldPort=" + ports[0],
                "SlurmdPort=" + ports[1],
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "StateSaveLocation=" + directory.resolve("state"),
                "SlurmdSpoolDir=" + directory.resolve("spool"),
                "SlurmctldPidFile=" + directory.resolve("slurmctld.pid"),
                "SlurmdPidFile=" + directory.resolve("slurmd.pid"),
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MpiDefault=none",
                "SchedulerType=sched/builtin",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                // two ranks per job even on a one-core machine
                "NodeName=" + host + " CPUs=" + Math.max(2, cpus) + " State=UNKNOWN",
                "PartitionName=test Nodes=" + host + " Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
                ""), StandardCharsets.UTF_8);
        daemons.add(daemon("slurmctld", "-D", "-c", "-f", conf().toString()));
        daemons.add(daemon("slurmd", "-D", "-f", conf().toString()));
        awaitTrue(() -> run(List.of("sinfo", "-h", "-o", "%t")).output.strip().equals("idle"), "the node to be idle");
    }

    private Process daemon(String name, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(sbin(name)));
        command.addAll(List.of(args));
        return environment(new ProcessBuilder(command)).redirectErrorStream(true)
                .redirectOutput(directory.resolve(name + ".log").toFile()).start();
    }

    private static String sbin(String name) {
        Path path = Path.of("/usr/sbin", name);
        return Files.isExecutable(path) ? path.toString() : name;
    }

    Path conf() {
        return directory.resolve("slurm.conf");
    }

    /** {@code builder} with this cluster's SLURM_CONF. */
    ProcessBuilder environment(ProcessBuilder builder) {
        builder.environment().put("SLURM_CONF", conf().toString());
        return builder;
    }

    /** {@code srun -n ranks --mpi=pmix -J name command...}. */
    ProcessBuilder srun(int ranks, String jobName, List<String> command) {
        List<String> all = new ArrayList<>(List.of("srun", "-n", Integer.toString(ranks), "--mpi=pmix", "-J", jobName));
        all.addAll(command);
        return environment(new ProcessBuilder(all));
    }

    /** {@code scancel --signal=SIGNAL --name=jobName}: the signal to every task of the job's steps. */
    void scancel(String jobName, String signal) {
        Result result = run(List.of("scancel", "--signal=" + signal, "--name=" + jobName));
        if (result.exitCode != 0) {
            throw new AssertionError("scancel failed: " + result.output);
        }
    }

    /** The daemons' logs, for a failure message. */
    String logs() throws IOException {
        StringBuilder text = new StringBuilder();
        for (String name : List.of("slurmctld.log", "slurmd.log")) {
            Path log = directory.resolve(name);
            if (Files.exists(log)) {
                text.append("--- ").append(name).append('\n').append(Files.readString(log));
            }
        }
        return text.toString();
    }

    @Override
    public void close() throws Exception {
        for (Process daemon : daemons.reversed()) {
            daemon.destroy();
            if (!daemon.waitFor(10, TimeUnit.SECONDS)) {
                daemon.destroyForcibly().waitFor();
            }
        }
        if (munged != null) {
            munged.descendants().forEach(ProcessHandle::destroy);
            munged.destroy();
            munged.waitFor(10, TimeUnit.SECONDS);
        }
    }

    private record Result(int exitCode, String output) {
    }

    private Result run(List<String> command) {
        try {
            Process process = environment(new ProcessBuilder(command)).redirectErrorStream(true).start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            return new Result(process.waitFor(), output);
        } catch (IOException e) {
            return new Result(-1, e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Result(-1, e.toString());
        }
    }

    private interface Condition {
        boolean holds() throws Exception;
    }

    private void awaitTrue(Condition condition, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what + "\n" + logs());
            }
            Thread.sleep(200);
        }
    }

    /** Two distinct ports free now (both held open while chosen). */
    private static int[] freePorts() throws IOException {
        try (ServerSocket a = new ServerSocket(0); ServerSocket b = new ServerSocket(0)) {
            return new int[] {a.getLocalPort(), b.getLocalPort()};
        }
    }
}
