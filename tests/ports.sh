# ports.sh: sourced by the tests that start servers. free_port prints a port on 127.0.0.1 with
# nothing listening on it or on the next one (servers here take PORT and PORT + 1).
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/$((p + 1))) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
