from gatehouse.cli.launcher import main

main()
