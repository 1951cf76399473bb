# bench/lib.sh: what the benchmark scripts share (sourced, not run).

# db_label N: how the cached files of N reports are named: 1m, 250k, or N itself.
db_label() {
    if [ $(($1 % 1000000)) -eq 0 ]; then
        echo "$(($1 / 1000000))m"
    elif [ $(($1 % 1000)) -eq 0 ]; then
        echo "$(($1 / 1000))k"
    else
        echo "$1"
    fi
}
