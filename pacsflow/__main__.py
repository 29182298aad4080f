from pacsflow.cli import main

main()
