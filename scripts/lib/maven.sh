# Sourced by the scripts after java.sh: sets MVN to the installed Maven, else the project's
# Maven Wrapper (./mvnw, which downloads the Maven version pinned in
# .mvn/wrapper/maven-wrapper.properties from Maven Central once, into ~/.m2/wrapper).
if command -v mvn >/dev/null; then
  MVN=mvn
else
  MVN="$root/mvnw"
fi
