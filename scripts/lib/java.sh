# Sourced by the scripts: sets JAVA_HOME and JAVA to a JDK 25 and exports the JVM flags.
# Order: $JAVA_HOME if it is 25 or newer, then the JVMs under /usr/lib/jvm, newest first.
java_major() { "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }
find_jdk() {
  local candidate
  for candidate in "${JAVA_HOME:-}" $(ls -d /usr/lib/jvm/* /Library/Java/JavaVirtualMachines/*/Contents/Home 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] || continue
    local major; major=$(java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then echo "$candidate"; return 0; fi
  done
  return 1
}
if ! JAVA_HOME=$(find_jdk); then
  echo "tinyllama: no JDK 25 found (looked at \$JAVA_HOME and /usr/lib/jvm); install one, e.g. Eclipse Temurin 25, and set JAVA_HOME" >&2
  exit 1
fi
export JAVA_HOME
JAVA="$JAVA_HOME/bin/java"
export TINYLLAMA_JVM_FLAGS="--sun-misc-unsafe-memory-access=allow --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED -XX:+UseParallelGC -Xss8m"
